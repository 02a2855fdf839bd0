"""Local topology for development and tests: the Envoy gateway in front of the services."""
