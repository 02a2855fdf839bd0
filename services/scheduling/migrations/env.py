"""Alembic environment of the scheduling service; run through services.runtime.migrations."""

from services.runtime.migrations import run_env
from services.scheduling.persistence import metadata

run_env(metadata)
