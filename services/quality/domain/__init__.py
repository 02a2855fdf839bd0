"""Quality domain logic, free of gRPC and persistence."""
