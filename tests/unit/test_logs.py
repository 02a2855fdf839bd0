"""JSON log lines carry the call context; the optional file rotates by size."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from services.runtime import context
from services.runtime.config import LoggingSettings
from services.runtime.logs import configure_logging


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


def test_json_line_with_service_version_and_request_id(tmp_path, restore_root_logger):
    log_file = tmp_path / "logs" / "svc.log"
    configure_logging(
        LoggingSettings(file=str(log_file)), service="quality", version="1.2.3", color="green"
    )
    token = context.request_id.set("req-9")
    try:
        logging.getLogger("access").info("call", extra={"grpc_code": "OK"})
    finally:
        context.request_id.reset(token)
    line = json.loads(log_file.read_text().splitlines()[-1])
    assert line["message"] == "call"
    assert line["level"] == "INFO"
    assert line["logger"] == "access"
    assert (line["service"], line["version"], line["color"]) == ("quality", "1.2.3", "green")
    assert line["request_id"] == "req-9"
    assert line["grpc_code"] == "OK"
    assert "time" in line


def test_file_rotates_at_max_size_and_keeps_backup_count(tmp_path, restore_root_logger):
    log_file = tmp_path / "svc.log"
    configure_logging(
        LoggingSettings(file=str(log_file), max_size_mb=1, backup_count=2),
        service="quality",
        version="1.2.3",
        color="",
    )
    logger = logging.getLogger("filler")
    for _ in range(4_000):  # about 4 MiB of log lines
        logger.info("x" * 1000)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["svc.log", "svc.log.1", "svc.log.2"]
    assert all(p.stat().st_size <= 1024 * 1024 + 2000 for p in tmp_path.iterdir())
