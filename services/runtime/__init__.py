"""The service runtime shared by every service: configuration, server, health,
interceptors, logging, persistence and cache."""
