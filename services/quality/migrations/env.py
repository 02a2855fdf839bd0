"""Alembic environment of the quality service; run through services.runtime.migrations."""

from services.quality.persistence import metadata
from services.runtime.migrations import run_env

run_env(metadata)
