"""Throwaway PostgreSQL clusters: initdb on a free port in a directory, start, stop.

Used by ``ops backup verify`` (restore into a scratch cluster and check it) and by the
tests. PostgreSQL refuses to run as root, so when this process is root every command
runs as ``os_user`` (``postgres``) and the directories are handed to that user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

PG_BIN_CANDIDATES = ("/usr/lib/postgresql/{v}/bin",)
PG_VERSIONS = ("17", "16", "15", "14", "13")


class ClusterError(RuntimeError):
    """A PostgreSQL command failed; the message carries its output."""


def postgres_bin_dir() -> Path | None:
    """Directory holding initdb and pg_ctl: PG_BIN, PATH, then Debian's layout."""
    if env := os.environ.get("PG_BIN"):
        return Path(env)
    if found := shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    for version in PG_VERSIONS:
        for pattern in PG_BIN_CANDIDATES:
            candidate = Path(pattern.format(v=version))
            if (candidate / "initdb").is_file():
                return candidate
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_as(os_user: str | None) -> str | None:
    """The user to run PostgreSQL tools as: ``os_user`` when this process is root."""
    return os_user if os.geteuid() == 0 else None


def hand_over(path: Path, os_user: str | None) -> None:
    """Make ``path`` (recursively) owned by ``os_user`` when running as root."""
    user = run_as(os_user)
    if user is None:
        return
    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in (*dirs, *files):
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False)


def run(
    args: Sequence[str], *, os_user: str | None, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    user = run_as(os_user)
    environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"}
    if user is not None:
        environ["HOME"] = pwd.getpwnam(user).pw_dir
    done = subprocess.run(
        list(args),
        user=user,
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd="/",
    )
    if check and done.returncode != 0:
        raise ClusterError(
            f"{' '.join(args[:3])} ... exited {done.returncode}:\n"
            f"{(done.stdout + done.stderr)[-3000:]}"
        )
    return done


@dataclass
class ScratchCluster:
    """One PostgreSQL cluster in ``data_dir`` listening on 127.0.0.1:``port``."""

    data_dir: Path
    port: int
    os_user: str | None = "postgres"
    bin_dir: Path = field(default_factory=lambda: postgres_bin_dir() or Path("/usr/bin"))
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def socket_dir(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}-socket"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _tool(self, name: str) -> str:
        return str(self.bin_dir / name)

    def init(self) -> None:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        hand_over(self.data_dir.parent, self.os_user)
        run(
            [
                self._tool("initdb"), "-D", str(self.data_dir), "-U", "postgres",
                "-A", "trust", "-E", "UTF8", "--no-sync",
            ],
            os_user=self.os_user,
        )  # fmt: skip

    def configure(self, settings: dict[str, str]) -> None:
        """Append settings to postgresql.auto.conf (takes effect at the next start)."""
        self.settings.update(settings)
        lines = "".join(f"{key} = '{value}'\n" for key, value in settings.items())
        with (self.data_dir / "postgresql.auto.conf").open("a", encoding="utf-8") as conf:
            conf.write(lines)

    def start(self, timeout: float = 60) -> None:
        self.socket_dir.mkdir(exist_ok=True)
        hand_over(self.socket_dir, self.os_user)
        options = (
            f"-c port={self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self.socket_dir} -c fsync=off"
        )
        run(
            [
                self._tool("pg_ctl"), "-D", str(self.data_dir), "-o", options,
                "-l", str(self.data_dir.parent / f"{self.data_dir.name}.log"),
                "-w", "-t", str(int(timeout)), "start",
            ],
            os_user=self.os_user,
            timeout=timeout + 10,
        )  # fmt: skip

    def wait_writable(self, timeout: float = 60) -> None:
        """Wait until recovery (if any) has ended and the cluster accepts writes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = self.sql("SELECT pg_is_in_recovery()", check=False)
            if done.returncode == 0 and done.stdout.strip() == "f":
                return
            time.sleep(0.2)
        raise ClusterError(f"cluster on port {self.port} still in recovery after {timeout} s")

    def sql(self, statement: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run one statement with psql; unaligned, tuples only."""
        return run(
            [
                self._tool("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                "-d", "postgres", "-AtX", "-v", "ON_ERROR_STOP=1", "-c", statement,
            ],
            os_user=self.os_user,
            check=check,
            timeout=60,
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        if not (self.data_dir / "postmaster.pid").exists():
            return
        run(
            [self._tool("pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop"],
            os_user=self.os_user,
            check=False,
            timeout=60,
        )
