"""The ``mfg`` command against real servers: outputs, files read, exit codes."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator

import click
import cv2
import numpy as np
import pytest
import yaml
from manufacturing_sdk.cli.main import cli

from services.quality.domain.inspection.regions import Box
from tests.quality.test_pictures import assert_fill_follows_the_mask, marked_blowhole
from tests.sdk import pictures

PROBLEM = """
machines: [{id: lathe}, {id: mill}]
jobs:
  - id: shaft
    operations:
      - eligible_machines: [{machine_id: lathe, duration: 3}]
      - eligible_machines: [{machine_id: mill, duration: 2}]
  - id: flange
    operations:
      - eligible_machines: [{machine_id: mill, duration: 4}]
      - eligible_machines: [{machine_id: lathe, duration: 3}]
"""


def mfg(
    port: int, *args: str, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "manufacturing_sdk.cli", "--target", f"127.0.0.1:{port}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_solve_prints_a_schedule_and_json(scheduling, tmp_path):
    problem = tmp_path / "problem.yaml"
    problem.write_text(PROBLEM)
    table = mfg(scheduling.port, "schedule", "solve", str(problem), "--time-limit", "1")
    assert table.returncode == 0, table.stderr
    assert "makespan 7" in table.stdout
    assert "lathe" in table.stdout
    as_json = mfg(scheduling.port, "--json", "schedule", "solve", str(problem))
    schedule = json.loads(as_json.stdout)["schedule"]
    assert len(schedule["operations"]) == 4


def test_any_method_can_be_called_with_json_from_stdin(scheduling):
    completed = mfg(
        scheduling.port, "call", "scheduling", "ListSchedules", "-d", "-", stdin='{"page_size": 3}'
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout) == {}  # no schedules yet: an empty reply


def test_a_response_stream_prints_one_json_line_per_reply(scheduling):
    request = json.dumps({"problem": yaml.safe_load(PROBLEM), "time_limit": "1s"})
    completed = mfg(scheduling.port, "call", "scheduling", "SolveStream", "-d", request)
    assert completed.returncode == 0, completed.stderr
    replies = [json.loads(line) for line in completed.stdout.splitlines()]
    assert replies[-1]["final"] and replies[-1]["schedule"]["makespan"] == "7"


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (("call", "scheduling", "ListSchedules", "-d", '{"page_size": -1}'), 3, "page_size"),
        (("call", "scheduling", "GetSchedule", "-d", '{"id": "missing"}'), 4, "NOT_FOUND"),
        (("call", "scheduling", "NoSuchMethod"), 2, "has no method"),
        (("call", "scheduling", "ListSchedules", "-d", "{not json"), 2, "JSON"),
    ],
)
def test_exit_codes_scripts_can_trust(scheduling, args, code, says):
    completed = mfg(scheduling.port, *args)
    assert completed.returncode == code
    assert says in completed.stderr


def test_unreachable_suite_exits_6():
    completed = mfg(1, "--timeout", "2", "call", "scheduling", "ListSchedules")
    assert completed.returncode == 6
    assert "UNAVAILABLE" in completed.stderr


def test_ingest_csv_with_progress_and_counts(maintenance, tmp_path):
    csv_file = tmp_path / "readings.csv"
    lines = ["machine_id,sensor,time,value"]
    lines += [
        f"press-7,temp,2026-01-05T08:{minute:02d}:00Z,{60 + minute / 10}" for minute in range(60)
    ]
    csv_file.write_text("\n".join(lines) + "\n")
    first = mfg(maintenance.port, "--json", "maintenance", "ingest", str(csv_file))
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["stored_count"] == "60"
    again = mfg(maintenance.port, "maintenance", "ingest", str(csv_file))
    assert again.returncode == 0, again.stderr
    assert "60" in again.stdout  # all duplicates the second time


def test_bad_csv_line_is_named(maintenance, tmp_path):
    csv_file = tmp_path / "readings.csv"
    csv_file.write_text("machine_id,sensor,time,value\npress-7,temp,yesterday,1\n")
    completed = mfg(maintenance.port, "maintenance", "ingest", str(csv_file))
    assert completed.returncode == 2
    assert "readings.csv line 2" in completed.stderr


def commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))
        else:
            yield (*path, name)


def test_every_command_has_an_example_in_its_help():
    found = list(commands(cli))
    assert ("quality", "inspect") in found and ("ops", "check") in found
    for command in found:
        completed = subprocess.run(
            [sys.executable, "-m", "manufacturing_sdk.cli", *command, "--help"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert completed.returncode == 0
        assert "Example" in completed.stdout, command


def test_inspect_overlay_tints_the_mask_the_service_sent(quality, tmp_path):
    source, _ = marked_blowhole(tmp_path)
    overlay = tmp_path / "overlay.png"
    completed = mfg(
        quality.port, "--json", "quality", "inspect", str(source.path),
        "--model", "magnetic-tile", "--overlay", str(overlay),
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)["result"]
    png = np.frombuffer(base64.b64decode(result["mask"]), np.uint8)
    mask = cv2.imdecode(png, cv2.IMREAD_UNCHANGED)
    assert mask is not None and mask.shape == (result["height"], result["width"])
    assert mask.any()
    boxes = [
        Box(r.get("x_min", 0), r.get("y_min", 0), r["x_max"], r["y_max"], r["score"])
        for r in result["regions"]
    ]
    assert_fill_follows_the_mask(pictures.read_png(overlay), mask, boxes)
