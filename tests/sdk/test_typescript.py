"""The TypeScript SDK: generated from the same contract, compiled strict, and run from
Node against the real suite behind a real Envoy."""

from __future__ import annotations

import filecmp
import http.client
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TS = ROOT / "sdk" / "typescript"
EXAMPLE = TS / "dist" / "examples" / "service-info.js"
WEB_EXAMPLE = TS / "dist" / "examples" / "grpc-web.js"


def require(path: Path, how: str) -> None:
    if not path.exists():
        message = f"{path.relative_to(ROOT)} is missing: {how}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def run_example(example: Path, local_suite) -> dict:
    """Run a compiled example against the local suite's gateway; its printed JSON."""
    require(example, "run `make ts-sdk`")
    completed = subprocess.run(
        ["node", str(example), f"http://{local_suite.target}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    reply: dict = json.loads(completed.stdout)
    return reply


def gateway_counter(local_suite, name: str) -> int:
    """A counter of the gateway's Envoy, from its admin interface."""
    connection = http.client.HTTPConnection("127.0.0.1", local_suite.admin, timeout=5)
    try:
        connection.request("GET", f"/stats?filter=^{name}$")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    (value,) = (line.split(": ")[1] for line in text.splitlines() if line.startswith(name + ":"))
    return int(value)


def same_tree(left: Path, right: Path) -> bool:
    comparison = filecmp.dircmp(left, right)
    if comparison.left_only or comparison.right_only:
        return False
    _, mismatch, errors = filecmp.cmpfiles(left, right, comparison.common_files, shallow=False)
    return not (mismatch or errors) and all(
        same_tree(left / sub, right / sub) for sub in comparison.common_dirs
    )


def test_generated_typescript_is_fresh(tmp_path):
    buf = TS / "node_modules" / ".bin" / "buf"
    require(buf, "run `make ts-sdk`")
    shutil.copytree(TS / "src" / "gen", tmp_path / "committed")
    completed = subprocess.run(
        [str(buf), "generate", "--template", "buf.gen.yaml", "-o", str(tmp_path / "fresh")],
        cwd=TS, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert same_tree(tmp_path / "committed", tmp_path / "fresh" / "src" / "gen"), (
        "run `make protos`"
    )


@pytest.mark.envoy
def test_node_calls_every_service_through_the_gateway(local_suite):
    reply = run_example(EXAMPLE, local_suite)
    assert set(reply["versions"]) == {"scheduling", "quality", "maintenance"}
    assert all(version.count(".") >= 2 for version in reply["versions"].values())
    assert reply["makespan"] == "7"


@pytest.mark.envoy
def test_node_calls_through_the_gateway_with_grpc_web(local_suite):
    http1_requests = "http.grpc_ingress.downstream_rq_http1_total"
    before = gateway_counter(local_suite, http1_requests)
    reply = run_example(WEB_EXAMPLE, local_suite)
    assert reply["quality"].count(".") >= 2
    # The stream's schedules improve to the optimum; the last one is stored.
    makespans = [int(makespan) for makespan in reply["makespans"]]
    assert makespans and makespans == sorted(makespans, reverse=True)
    assert makespans[-1] == 7
    assert reply["stored"]
    assert reply["refused"].startswith("InvalidArgument: ")
    # gRPC-Web from fetch: HTTP/1.1 calls at the gateway (the native transport is HTTP/2).
    assert gateway_counter(local_suite, http1_requests) - before >= 3
