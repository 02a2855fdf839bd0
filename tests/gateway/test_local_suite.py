"""`make up` as a new user runs it: the whole suite behind a real Envoy, then Ctrl-C.

Runs ``python -m services.devstack`` in a subprocess, waits for the banner, pastes
every command it prints into a shell, and stops it with SIGINT.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.devstack.suite import free_ports

ROOT = Path(__file__).resolve().parents[2]
SERVICE_NAMES = (
    "manufacturing.scheduling.v1.SchedulingService",
    "manufacturing.quality.v1.QualityService",
    "manufacturing.maintenance.v1.MaintenanceService",
)

pytestmark = pytest.mark.envoy


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_suite_starts_answers_the_printed_calls_and_stops_cleanly(tmp_path):
    gateway, admin, *backends = free_ports(5)
    started = time.monotonic()
    process = subprocess.Popen(
        [
            sys.executable, "-m", "services.devstack",
            "--gateway-port", str(gateway), "--admin-port", str(admin),
            "--service-ports", ",".join(map(str, backends)),
            "--data-dir", str(tmp_path / "var"),
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
        assert time.monotonic() - started < 60

        commands = [line.strip() for line in output if re.search(r"grpcurl -plaintext", line)]
        assert len(commands) == 4  # list + one call per service
        rest = [line.strip() for line in output if line.strip().startswith("curl ")]
        assert len(rest) == 1
        commands += rest
        assert all(f"localhost:{gateway}" in command for command in commands)
        for command in commands:
            completed = subprocess.run(  # noqa: S602  (pasting into a shell is the point)
                command, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=30
            )
            assert completed.returncode == 0, f"{command}\n{completed.stderr}"
            if command.endswith(" list"):
                assert set(SERVICE_NAMES) <= set(completed.stdout.split())

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        remaining = process.stdout.read()
        assert "Stopped." in remaining
        assert not any(port_open(port) for port in (gateway, *backends))
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
