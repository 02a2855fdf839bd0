"""The local suite as `make up` runs it (three services behind a real Envoy), once for
the SDK, example and CLI tests that go through the gateway."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.devstack.suite import free_ports

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("scheduling", "quality", "maintenance")


@dataclass(frozen=True)
class LocalSuite:
    gateway: int
    admin: int
    ports: dict[str, int]
    data_dir: Path

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.gateway}"


@pytest.fixture(scope="session")
def local_suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSuite]:
    gateway, admin, *ports = free_ports(5)
    suite = LocalSuite(
        gateway,
        admin,
        dict(zip(SERVICES, ports, strict=True)),
        tmp_path_factory.mktemp("suite") / "var",
    )
    process = subprocess.Popen(
        [
            sys.executable, "-m", "services.devstack", "--gateway-port", str(gateway),
            "--admin-port", str(admin), "--service-ports", ",".join(map(str, ports)),
            "--data-dir", str(suite.data_dir),
        ],
        cwd=ROOT, env={**os.environ, "MFG_METRICS__PORT": "0"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        output = []
        for line in process.stdout:
            output.append(line)
            if line.startswith("ready in") or "could not start" in line:
                break
        assert any(line.startswith("ready in") for line in output), "".join(output)
        # Keep reading what it prints, so a full pipe never blocks the suite.
        threading.Thread(target=output.extend, args=(process.stdout,), daemon=True).start()
        yield suite
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
