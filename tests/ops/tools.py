"""External tools the ops tests run (promtool, pgBackRest, PostgreSQL binaries).

A missing tool skips its tests with the reason on a developer machine, but fails them
when ``CI`` is set: CI must not go green by skipping (``ops/install-tools.sh`` installs
them there).
"""

from __future__ import annotations

import os
import shutil
import sys
import urllib.request
from pathlib import Path
from typing import NoReturn

import pytest

from services.ops.backup import postgres_bin_dir


def missing(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this is a failure; run ops/install-tools.sh)")
    pytest.skip(f"{reason}; install with ops/install-tools.sh")


def require_tool(name: str, package: str) -> str:
    """Path of ``name``: beside this Python (virtualenv tools) or on PATH."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found is None:
        missing(f"{name} not found (install {package})")
    return found


def require_postgres_bin() -> str:
    found = postgres_bin_dir()
    if found is None:
        missing("PostgreSQL server binaries (initdb, pg_ctl) not found")
    return str(found)


def require_pypi_json(url: str) -> None:
    """Skip unless PyPI's JSON API answers ``url``: pip-audit's source.

    Unlike the tools above this is a remote service the machine may not reach (some
    mirrors serve the package index but not the per-version JSON), so it skips even in
    CI; the workflow's own pip-audit step is where an unreachable API fails the build.
    """
    try:
        with urllib.request.urlopen(url, timeout=15) as response:  # noqa: S310 (https)
            response.read(1)
    except (OSError, ValueError) as error:
        pytest.skip(f"PyPI's JSON API does not answer {url} from here ({error})")
