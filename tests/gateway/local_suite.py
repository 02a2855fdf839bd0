"""``python -m services.devstack`` as a subprocess: started, its banner read, stopped."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from services.devstack.suite import free_ports
from services.rollout import processes

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class RunningSuite:
    process: subprocess.Popen[str]
    gateway: int
    admin: int  # Envoy's admin port
    backends: list[int]
    output: list[str]  # everything printed up to and including "ready in ..."


@contextmanager
def local_suite(data_dir: Path, *options: str) -> Iterator[RunningSuite]:
    """The suite on free ports with ``options`` added; ready when the block starts.

    Left running, it gets SIGTERM when the block ends (and SIGKILL if it does not stop).
    """
    gateway, admin, *backends = free_ports(5)
    process = subprocess.Popen(
        [
            sys.executable, "-m", "services.devstack",
            "--gateway-port", str(gateway), "--admin-port", str(admin),
            "--service-ports", ",".join(map(str, backends)),
            "--data-dir", str(data_dir),
            *options,
        ],
        cwd=ROOT,
        # Free metrics ports too, so a suite already running here does not collide.
        env={**os.environ, "MFG_METRICS__PORT": "0"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        output: list[str] = []
        for line in process.stdout:
            output.append(line)
            if line.startswith("ready in") or "could not start" in line:
                break
        assert any(line.startswith("ready in") for line in output), "".join(output)
        yield RunningSuite(process, gateway, admin, backends, output)
    finally:
        if process.poll() is None:
            processes.stop([process.pid], timeout=30)  # SIGTERM: the suite stops in order
        process.wait()


def paste(command: str, **environ: str) -> subprocess.CompletedProcess[str]:
    """Run a printed command as a user pasting it into a shell would."""
    return subprocess.run(  # noqa: S602  (pasting into a shell is the point)
        command,
        shell=True,
        cwd=ROOT,
        env={**os.environ, **environ},
        capture_output=True,
        text=True,
        timeout=30,
    )
