"""Command-line tools the delivery tests use: pinned in requirements/dev.txt.

A missing tool skips its tests on a developer machine and fails them in CI (``CI`` set),
like the shared data sets: CI installs every pinned tool, so a skip there would hide
an unchecked artifact.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("scheduling", "quality", "maintenance")


def tool(name: str, why: str = "") -> str:
    """Path of ``name``: beside this interpreter (the venv) or on PATH; else skip/fail."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found:
        return found
    message = f"{name} not found beside {sys.executable} nor on PATH" + (f" ({why})" if why else "")
    if os.environ.get("CI"):
        pytest.fail(message + "; CI must install requirements/dev.txt")
    pytest.skip(message)


def module(name: str, why: str = ""):
    """Import a pinned Python package; skip without it locally, fail in CI."""
    try:
        return importlib.import_module(name)
    except ImportError:
        message = f"Python package {name} is not installed" + (f" ({why})" if why else "")
        if os.environ.get("CI"):
            pytest.fail(message + "; CI must install requirements/dev.txt")
        pytest.skip(message)


def run(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None, timeout: float = 60):
    """Run a command; its output is kept for the assertion message."""
    return subprocess.run(
        list(args),
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
