"""Alembic environment of the maintenance service; run through services.runtime.migrations."""

from services.maintenance.persistence import metadata
from services.runtime.migrations import run_env

run_env(metadata)
