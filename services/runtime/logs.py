"""Logging configured once at start: JSON lines to stdout, optionally a rotating file.

The file rotates by size (``max_size_mb``, ``backup_count``), rotated files may be
gzipped (``compress``) and are deleted once older than ``max_age_days``.

Every record carries the service, its version and color, and the request id of the
call being served, so lines from one request can be followed across services.
"""

from __future__ import annotations

import gzip
import logging
import logging.handlers
import os
import shutil
import sys
import time
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


class RotatingLogFile(logging.handlers.RotatingFileHandler):
    """Rotates by size, gzips rotated files when ``compress``, deletes old ones by age.

    Rotated files are ``<file>.1[.gz]`` (newest) to ``<file>.<backup_count>[.gz]``;
    after each rotation (and once at start) those last modified more than
    ``max_age_days`` ago are deleted. Compression runs in the rotation itself, under the
    handler's lock, at a fast level (about a second for 100 MB).
    """

    def __init__(
        self, filename: str, *, max_bytes: int, backup_count: int, compress: bool, max_age_s: float
    ) -> None:
        super().__init__(filename, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8")
        self.max_age_s = max_age_s
        if compress:
            self.namer = _gz_name
            self.rotator = _gzip_rotate
        self.remove_expired()

    def doRollover(self) -> None:
        super().doRollover()
        self.remove_expired()

    def rotated_files(self) -> list[Path]:
        base = Path(self.baseFilename)
        return sorted(p for p in base.parent.glob(f"{base.name}.*") if _rotation_index(base, p))

    def remove_expired(self) -> None:
        if self.max_age_s <= 0:
            return
        oldest_kept = time.time() - self.max_age_s
        for path in self.rotated_files():
            try:
                if path.stat().st_mtime < oldest_kept:
                    path.unlink()
            except FileNotFoundError:
                pass


def _rotation_index(base: Path, path: Path) -> bool:
    suffix = path.name[len(base.name) + 1 :].removesuffix(".gz")
    return suffix.isdigit()


def _gz_name(name: str) -> str:
    return name + ".gz"


def _gzip_rotate(source: str, dest: str) -> None:
    with open(source, "rb") as plain, gzip.open(dest, "wb", compresslevel=1) as packed:
        shutil.copyfileobj(plain, packed, 1024 * 1024)
    os.remove(source)


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
            RotatingLogFile(
                settings.file,
                max_bytes=settings.max_size_mb * 1024 * 1024,
                backup_count=settings.backup_count,
                compress=settings.compress,
                max_age_s=settings.max_age_days * 86400,
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
