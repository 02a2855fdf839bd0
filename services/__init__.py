"""The manufacturing AI services and the runtime they share."""
