"""Local processes of one color: start from a source tree, stop gracefully, find releases.

A *release* of a service at version V is a source tree (``services/`` and ``config/``)
whose ``services/<name>/VERSION`` says V: the repository itself for the version it
holds, or an unpacked copy (by convention ``<data_dir>/releases/<service>/<V>/``).
A color runs
``python -m services.<name>`` with that tree first on ``PYTHONPATH``, so the same
interpreter and dependencies run the other version's code.

Processes run in their own session (a terminal's Ctrl-C reaches only the launcher) and
outlive the ``rollout`` command that started them; the topology records their pids.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from services.runtime.build_info import read_version

REPOSITORY = Path(__file__).resolve().parents[2]


class LaunchError(RuntimeError):
    """A release is missing, its migrations failed, or a process could not start."""


def version_of(source: Path, service: str) -> str:
    return read_version(source / "services" / service / "VERSION")


def find_release(service: str, version: str, data_dir: Path, source: Path | None = None) -> Path:
    """The source tree holding ``service`` at ``version``."""
    candidates = (
        [source] if source is not None else [REPOSITORY, data_dir / "releases" / service / version]
    )
    for candidate in candidates:
        try:
            found = version_of(candidate, service)
        except (OSError, ValueError):
            continue
        if found == version:
            return candidate.resolve()
    where = ", ".join(str(c) for c in candidates)
    raise LaunchError(
        f"no release of {service} {version} in {where}: pass --source DIR, a tree whose "
        f"services/{service}/VERSION says {version}"
    )


def _environ(source: Path, extra: Mapping[str, str]) -> dict[str, str]:
    environ = {**os.environ, **extra}
    path = [str(source)]
    if environ.get("PYTHONPATH"):
        path.append(environ["PYTHONPATH"])
    environ["PYTHONPATH"] = os.pathsep.join(path)
    return environ


def migrate(service: str, source: Path, environ: Mapping[str, str], timeout: float = 120) -> bool:
    """Apply the release's migrations (expand-only by rule, so the live color keeps working).

    Returns False when the service keeps no tables (no ``migrations/`` in its release).
    """
    if not (source / "services" / service / "migrations").is_dir():
        return False
    completed = subprocess.run(
        [sys.executable, "-m", "services.runtime.migrations", service],
        env=_environ(source, environ),
        cwd=source,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if completed.returncode != 0:
        raise LaunchError(f"migrations of {service} failed:\n{completed.stderr[-2000:]}")
    return True


def start_color(
    service: str,
    color: str,
    ports: Sequence[int],
    source: Path,
    environ: Mapping[str, str],
    log_dir: Path,
    metrics_ports: Sequence[int] = (),
) -> list[int]:
    """Start one process per port; returns their pids (not waiting for readiness).

    Replica ``i`` serves metrics on ``metrics_ports[i]`` if given, else on a free port:
    two colors (or replicas) on one host must not both claim the configured one.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    pids = []
    for index, port in enumerate(ports):
        suffix = f"-{index}" if len(ports) > 1 else ""
        log_path = log_dir / f"{service}-{color}{suffix}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", f"services.{service}"],
                env=_environ(
                    source,
                    {
                        **environ,
                        "MFG_SERVER__PORT": str(port),
                        "MFG_METRICS__PORT": str(
                            metrics_ports[index] if index < len(metrics_ports) else 0
                        ),
                        "DEPLOY_COLOR": color,
                    },
                ),
                cwd=source,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        _CHILDREN[process.pid] = process
        pids.append(process.pid)
    return pids


# Processes this interpreter started, so it can reap them (a zombie still "exists").
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def alive(pid: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rpartition(")")[2].split()[0] != "Z"
    return True


def exit_code(pid: int) -> int | None:
    """The exit code of a process this interpreter started, once it has ended."""
    child = _CHILDREN.get(pid)
    return None if child is None else child.poll()


def stop(pids: Sequence[int], timeout: float = 30.0) -> bool:
    """SIGTERM (graceful: NOT_SERVING, delay, drain), then SIGKILL after ``timeout``.

    Returns True when every process ended within ``timeout`` on its own.
    """
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    graceful = True
    for pid in pids:
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if alive(pid):
            graceful = False
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while alive(pid):
                time.sleep(0.05)
        _CHILDREN.pop(pid, None)
    return graceful
