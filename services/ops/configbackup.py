"""Backup of configuration and secrets: a dated tar.gz, encrypted when a passphrase is given.

The database is covered by pgBackRest; what else a restore needs is the configuration
(config/*.yaml, pgbackrest.conf) and the secrets the services read through ``*_FILE``
variables (database and Redis passwords, JWT keys, TLS keys). The archive holds a
manifest with each file's sha256. With ``passphrase_file`` it is encrypted with
``openssl enc -aes-256-cbc -pbkdf2`` (the passphrase must live elsewhere than the
backup); either way it is written with mode 0600.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterable
from pathlib import Path


class ConfigBackupError(RuntimeError):
    """A file to back up is missing, or encryption failed."""


def _files(paths: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            # Kubernetes mounts hold each file twice (name -> ..data/name): skip "..*".
            found.extend(
                sorted(
                    p
                    for p in path.rglob("*")
                    if p.is_file() and not any(part.startswith("..") for part in p.parts)
                )
            )
        elif path.is_file():
            found.append(path)
        else:
            raise ConfigBackupError(f"{path}: no such file or directory")
    return found


def backup_config(
    paths: Iterable[Path],
    output_dir: Path,
    *,
    passphrase_file: Path | None = None,
    now: float | None = None,
) -> Path:
    """Write ``config-<UTC time>.tar.gz[.enc]`` into ``output_dir``; return its path."""
    files = _files(paths)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    manifest = {
        "created": stamp,
        "files": {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files},
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in files:
            archive.add(path, arcname=str(path).lstrip("/"))
        body = json.dumps(manifest, indent=2).encode()
        info = tarfile.TarInfo("MANIFEST.json")
        info.size = len(body)
        archive.addfile(info, io.BytesIO(body))
    data = buffer.getvalue()
    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / f"config-{stamp}.tar.gz"
    if passphrase_file is not None:
        data = _encrypt(data, passphrase_file)
        target = target.with_name(target.name + ".enc")
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(data)
    return target


def _openssl() -> str:
    found = shutil.which("openssl")
    if found is None:
        raise ConfigBackupError("openssl is needed to encrypt the archive")
    return found


def _encrypt(data: bytes, passphrase_file: Path) -> bytes:
    done = subprocess.run(
        [_openssl(), "enc", "-aes-256-cbc", "-pbkdf2", "-salt", "-pass", f"file:{passphrase_file}"],
        input=data,
        capture_output=True,
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        raise ConfigBackupError(f"openssl enc failed: {done.stderr.decode(errors='replace')}")
    return done.stdout


def decrypt(path: Path, passphrase_file: Path) -> bytes:
    done = subprocess.run(
        [_openssl(), "enc", "-d", "-aes-256-cbc", "-pbkdf2", "-pass", f"file:{passphrase_file}",
         "-in", str(path)],
        capture_output=True,
        check=False,
        timeout=120,
    )  # fmt: skip
    if done.returncode != 0:
        raise ConfigBackupError(f"openssl enc -d failed: {done.stderr.decode(errors='replace')}")
    return done.stdout


def prune(output_dir: Path, keep_days: float, now: float | None = None) -> list[Path]:
    """Delete archives older than ``keep_days``; return what was deleted."""
    oldest = (time.time() if now is None else now) - keep_days * 86400
    removed = []
    for path in output_dir.glob("config-*.tar.gz*"):
        if path.stat().st_mtime < oldest:
            path.unlink()
            removed.append(path)
    return removed
