"""``python -m services.rollout``: the ``rollout`` command."""

import sys

from services.rollout.cli import main

sys.exit(main())
