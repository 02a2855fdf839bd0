"""`make up` as a new user runs it: the whole suite behind a real Envoy, then Ctrl-C.

Runs ``python -m services.devstack`` in a subprocess, waits for the banner, pastes
every command it prints into a shell, and stops it with SIGINT.
"""

from __future__ import annotations

import re
import signal
import socket
import time
from pathlib import Path

import pytest

from tests.gateway.local_suite import local_suite, paste

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
    started = time.monotonic()
    with local_suite(tmp_path / "var") as suite:
        assert time.monotonic() - started < 60
        output = suite.output
        commands = [line.strip() for line in output if re.search(r"grpcurl -plaintext", line)]
        assert len(commands) == 4  # list + one call per service
        rest = [line.strip() for line in output if line.strip().startswith("curl ")]
        assert len(rest) == 1
        commands += rest
        assert all(f"localhost:{suite.gateway}" in command for command in commands)
        for command in commands:
            completed = paste(command)
            assert completed.returncode == 0, f"{command}\n{completed.stderr}"
            if command.endswith(" list"):
                assert set(SERVICE_NAMES) <= set(completed.stdout.split())

        suite.process.send_signal(signal.SIGINT)
        assert suite.process.wait(timeout=30) == 0
        assert suite.process.stdout is not None
        assert "Stopped." in suite.process.stdout.read()
        assert not any(port_open(port) for port in (suite.gateway, *suite.backends))
