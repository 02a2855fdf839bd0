"""Run the scheduling service: ``python -m services.scheduling``."""

import sys
from pathlib import Path

from services.runtime.main import run
from services.scheduling.app import compose

sys.exit(run("scheduling", compose, Path(__file__).with_name("VERSION")))
