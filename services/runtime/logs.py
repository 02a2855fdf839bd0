"""Logging configured once at start: JSON lines to stdout, optionally a rotating file.

Every record carries the service, its version and color, and the request id of the
call being served, so lines from one request can be followed across services.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

from pythonjsonlogger.json import JsonFormatter

from services.runtime import context as call_context
from services.runtime.config import LoggingSettings


class _CallContextFilter(logging.Filter):
    def __init__(self, static_fields: dict[str, str]) -> None:
        super().__init__()
        self._static = static_fields

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in self._static.items():
            setattr(record, key, value)
        record.request_id = call_context.request_id.get()
        return True


def configure_logging(settings: LoggingSettings, *, service: str, version: str, color: str) -> None:
    """Replace the root logger's handlers; call once from a composition root."""
    if settings.json_format:
        formatter: logging.Formatter = JsonFormatter(
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    else:
        formatter = logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
        )
    context_filter = _CallContextFilter({"service": service, "version": version, "color": color})
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stdout)]
    if settings.file:
        Path(settings.file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(
            logging.handlers.RotatingFileHandler(
                settings.file,
                maxBytes=settings.max_size_mb * 1024 * 1024,
                backupCount=settings.backup_count,
                encoding="utf-8",
            )
        )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(context_filter)
        root.addHandler(handler)
    root.setLevel(settings.level)
