"""The examples in examples/ run against the local suite through the gateway, as a
reader would run them: the Python SDK (sync and asyncio) and the CLI script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from tests.sdk import pictures

pytestmark = pytest.mark.envoy

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def run_example(name: str, *args: str) -> Any:
    completed = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def test_every_example_is_tested():
    tested = {"scheduling_sync.py", "scheduling_async.py", "quality_sync.py",
              "quality_async.py", "maintenance_sync.py", "maintenance_async.py"}  # fmt: skip
    assert {path.name for path in EXAMPLES.glob("*.py")} == tested


def test_scheduling_sync(local_suite):
    reply = run_example("scheduling_sync.py", local_suite.target)
    assert reply["makespan"] == 7 and reply["schedule_id"]
    assert len(reply["operations"]) == 4
    assert any(field.startswith("problem") for field in reply["refused_fields"])


def test_scheduling_async(local_suite):
    reply = run_example("scheduling_async.py", local_suite.target)
    makespans = [step["makespan"] for step in reply["improvements"]]
    assert makespans == sorted(makespans, reverse=True) and makespans[-1] == 7
    assert all(step["lower_bound"] <= step["makespan"] for step in reply["improvements"])
    assert reply["schedule_id"]


def test_quality_sync(local_suite):
    reply = run_example("quality_sync.py", local_suite.target, "examples-test/ring/diameter")
    assert reply["stored_subgroups"] == 25
    assert reply["out_of_control"] == [24]  # the drifted last subgroup
    assert reply["center_line"] < reply["upper_control_limit"]
    assert any(model.startswith("neu-surface ") for model in reply["active_models"])


def test_quality_async(local_suite, tmp_path):
    rng = np.random.default_rng(5)
    paths = []
    for index in range(3):
        path = tmp_path / f"part-{index}.png"
        cv2.imwrite(str(path), np.clip(rng.normal(128, 20, (200, 200)), 0, 255).astype(np.uint8))
        paths.append(str(path))
    verdicts = run_example("quality_async.py", local_suite.target, *paths)
    assert set(verdicts) == {"part-0.png", "part-1.png", "part-2.png"}
    assert set(verdicts.values()) <= {"VERDICT_GOOD", "VERDICT_DEFECTIVE"}


def test_maintenance_sync(local_suite):
    reply = run_example("maintenance_sync.py", local_suite.target, "examples-press")
    assert (reply["stored"], reply["alerts_raised"]) == (4, 1)  # 83.5 C broke the rule
    assert reply["alert"]["sensor"] == "temp"
    assert reply["latest"] == {"temp": 83.5}


def test_maintenance_async(local_suite):
    machines = ["examples-a", "examples-b"]
    reply = run_example("maintenance_async.py", local_suite.target, *machines)
    assert reply["stored"] == 6
    assert reply["latest"] == {machine: {"temp": 55.0} for machine in machines}


def test_cli_script(local_suite, tmp_path):
    completed = subprocess.run(
        ["bash", str(EXAMPLES / "cli.sh"), str(tmp_path)],
        env={**os.environ, "MFG_TARGET": local_suite.target,
             "MFG": f"{sys.executable} -m manufacturing_sdk.cli"},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "makespan 7" in completed.stdout
    plan = pictures.read_png(tmp_path / "plan.png")
    assert plan.shape[1] == pictures.GANTT_WIDTH and pictures.colourful(plan, 30).sum() > 10_000
    chart = pictures.read_png(tmp_path / "chart.png")
    assert chart.shape[:2] == (2 * pictures.CHART_PANEL[0], pictures.CHART_PANEL[1])
    assert pictures.chart_points(chart).sum() > 500
    overlay = pictures.read_png(tmp_path / "overlay.png")
    part = cv2.imread(str(EXAMPLES / "part.png"), cv2.IMREAD_GRAYSCALE)
    assert part is not None
    assert overlay.shape[:2] == (2 * part.shape[0], 2 * part.shape[1])
    assert pictures.colourful(overlay).any()  # the verdict caption, and any regions
