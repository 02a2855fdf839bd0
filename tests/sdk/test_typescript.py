"""The TypeScript SDK: generated from the same contract, compiled strict, and run from
Node against the real suite behind a real Envoy."""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

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
def test_node_calls_every_service_through_the_gateway(local_suite):
    require(EXAMPLE, "run `make ts-sdk`")
    completed = subprocess.run(
        ["node", str(EXAMPLE), f"http://{local_suite.target}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    reply = json.loads(completed.stdout)
    assert set(reply["versions"]) == {"scheduling", "quality", "maintenance"}
    assert all(version.count(".") >= 2 for version in reply["versions"].values())
    assert reply["makespan"] == "7"
