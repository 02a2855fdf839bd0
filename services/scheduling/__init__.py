"""Scheduling service: job-shop scheduling."""
