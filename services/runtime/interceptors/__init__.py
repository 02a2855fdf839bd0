"""Server interceptors, each with one job; ``server.py`` chains them."""
