"""The public data sets in ../shared/data: present on developer machines and in CI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_data(folder: str) -> Path:
    """Path to one data set; skips the test when it is absent, except in CI."""
    path = SHARED_DATA / folder
    if not path.is_dir():
        message = f"data set {folder!r} not found at {path} (it lives beside the repository)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path
