"""Maintenance service: sensor ingestion and machine condition."""
