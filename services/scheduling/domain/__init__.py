"""Job-shop problems and schedules, free of gRPC and persistence."""
