"""Run the maintenance service: ``python -m services.maintenance``."""

import sys
from pathlib import Path

from services.maintenance.app import compose
from services.runtime.main import run

sys.exit(run("maintenance", compose, Path(__file__).with_name("VERSION")))
