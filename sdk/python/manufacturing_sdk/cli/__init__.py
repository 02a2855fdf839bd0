"""``mfg``: the suite from a terminal. Run ``mfg --help``."""

from manufacturing_sdk.cli.main import main

__all__ = ["main"]
