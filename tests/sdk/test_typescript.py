"""The TypeScript SDK: generated from the same contract, compiled strict, and run from
Node against the real suite behind a real Envoy."""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from services.devstack.suite import free_ports

ROOT = Path(__file__).resolve().parents[2]
TS = ROOT / "sdk" / "typescript"
EXAMPLE = TS / "dist" / "examples" / "service-info.js"


def require(path: Path, how: str) -> None:
    if not path.exists():
        message = f"{path.relative_to(ROOT)} is missing: {how}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


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
def test_node_calls_every_service_through_the_gateway(tmp_path):
    require(EXAMPLE, "run `make ts-sdk`")
    gateway, admin, *backends = free_ports(5)
    suite = subprocess.Popen(
        [
            sys.executable, "-m", "services.devstack", "--gateway-port", str(gateway),
            "--admin-port", str(admin), "--service-ports", ",".join(map(str, backends)),
            "--data-dir", str(tmp_path / "var"),
        ],
        cwd=ROOT, env={**os.environ, "MFG_METRICS__PORT": "0"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert suite.stdout is not None
        for line in suite.stdout:
            if line.startswith("ready in") or "could not start" in line:
                break
        completed = subprocess.run(
            ["node", str(EXAMPLE), f"http://127.0.0.1:{gateway}"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert completed.returncode == 0, completed.stderr
        reply = json.loads(completed.stdout)
        assert set(reply["versions"]) == {"scheduling", "quality", "maintenance"}
        assert all(version.count(".") >= 2 for version in reply["versions"].values())
        assert reply["makespan"] == "7"
    finally:
        suite.send_signal(signal.SIGINT)
        try:
            suite.wait(timeout=30)
        except subprocess.TimeoutExpired:
            suite.kill()
            suite.wait()
