"""Run the quality service: ``python -m services.quality``."""

import sys
from pathlib import Path

from services.quality.app import compose
from services.runtime.main import run

sys.exit(run("quality", compose, Path(__file__).with_name("VERSION")))
