"""Which build is running: semantic version, git revision, start time."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$"
)


@dataclass(frozen=True)
class BuildInfo:
    version: str
    git_revision: str
    start_time: datetime


def read_version(version_file: Path) -> str:
    """Read a service's VERSION file: one semantic version, nothing else."""
    version = version_file.read_text(encoding="utf-8").strip()
    if not _SEMVER.match(version):
        raise ValueError(f"{version_file}: {version!r} is not a semantic version")
    return version


def git_revision(repository: Path) -> str:
    """GIT_REVISION when set (images bake it in), else ask git, else "unknown"."""
    if revision := os.environ.get("GIT_REVISION"):
        return revision
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=repository,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return completed.stdout.strip() or "unknown"


def collect(version_file: Path) -> BuildInfo:
    return BuildInfo(
        version=read_version(version_file),
        git_revision=git_revision(version_file.parent),
        start_time=datetime.now(UTC),
    )
