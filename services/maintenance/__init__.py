"""Maintenance service: sensor ingestion, anomaly detection, remaining useful life, alerts."""
