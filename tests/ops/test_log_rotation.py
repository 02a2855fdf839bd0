"""Log files rotate at the configured size, rotated files are gzipped, old ones deleted."""

from __future__ import annotations

import gzip
import json
import logging
import os
import time
from collections.abc import Iterator

import pytest

from services.runtime.config import LoggingSettings, load_settings
from services.runtime.logs import RotatingLogFile, configure_logging

DAY = 86400


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def file_handler() -> RotatingLogFile:
    return next(h for h in logging.getLogger().handlers if isinstance(h, RotatingLogFile))


def fill(mebibytes: float) -> None:
    logger = logging.getLogger("filler")
    for _ in range(int(mebibytes * 1024)):
        logger.info("x" * 1000)


def test_the_shipped_configuration_compresses_and_keeps_thirty_days(tmp_path):
    settings = load_settings("quality", environ={"DATA_DIR": str(tmp_path)}).logging
    assert (settings.max_size_mb, settings.backup_count) == (100, 10)
    assert settings.compress is True
    assert settings.max_age_days == 30


def test_rotated_files_are_gzipped_json_lines_within_the_size_limit(tmp_path, restore_root_logger):
    log_file = tmp_path / "svc.log"
    configure_logging(
        LoggingSettings(file=str(log_file), max_size_mb=1, backup_count=3, compress=True),
        service="quality",
        version="1.2.3",
        color="blue",
    )
    fill(4.5)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["svc.log", "svc.log.1.gz", "svc.log.2.gz", "svc.log.3.gz"]
    assert log_file.stat().st_size <= 1024 * 1024
    with gzip.open(tmp_path / "svc.log.1.gz", "rt", encoding="utf-8") as rotated:
        lines = rotated.read().splitlines()
    assert 900 <= len(lines) <= 1100  # about 1 MiB of 1 KB lines
    first = json.loads(lines[0])
    assert (first["service"], first["version"], first["message"][:3]) == ("quality", "1.2.3", "xxx")
    # Highly repetitive lines: compression must have happened, not a rename.
    assert (tmp_path / "svc.log.1.gz").stat().st_size < 100 * 1024


def test_rotated_files_older_than_max_age_are_deleted(tmp_path, restore_root_logger):
    log_file = tmp_path / "svc.log"
    long_ago = time.time() - 3 * DAY
    for name in ("svc.log.1.gz", "svc.log.2.gz", "svc.log.7", "svc.log.bak", "other.log.1"):
        (tmp_path / name).write_bytes(b"old")
        os.utime(tmp_path / name, (long_ago, long_ago))
    recent = tmp_path / "svc.log.3.gz"
    recent.write_bytes(b"recent")

    configure_logging(
        LoggingSettings(file=str(log_file), max_size_mb=1, backup_count=5, compress=True,
                        max_age_days=2),
        service="quality", version="1.2.3", color="",
    )  # fmt: skip
    # At start: expired rotations go; files that are not rotations of this log stay.
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["other.log.1", "svc.log", "svc.log.3.gz", "svc.log.bak"]

    # At rotation: shifting keeps each file's age, so an old one moved up is deleted.
    os.utime(recent, (long_ago, long_ago))
    fill(1.2)
    assert file_handler().rotated_files() == [tmp_path / "svc.log.1.gz"]


def test_without_max_age_nothing_is_deleted(tmp_path, restore_root_logger):
    old = tmp_path / "svc.log.2.gz"
    old.write_bytes(b"old")
    os.utime(old, (0, 0))
    configure_logging(
        LoggingSettings(file=str(tmp_path / "svc.log"), compress=True),
        service="quality", version="1", color="",
    )  # fmt: skip
    assert old.exists()
