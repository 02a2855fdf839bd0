"""The Gantt chart command: SVG and PNG from a stored schedule's JSON."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from google.protobuf import json_format
from manufacturing.scheduling.v1 import schedule_pb2

from services.scheduling import gantt


def schedule() -> schedule_pb2.Schedule:
    message = schedule_pb2.Schedule(id="s1", makespan=9)
    message.problem.machines.add(id="a").unavailable.add(start=3, end=5)
    message.problem.machines.add(id="b")
    for job, op, machine, start, end in [
        ("j1", "0", "a", 0, 3),
        ("j1", "1", "b", 3, 5),
        ("j2", "0", "b", 0, 3),
        ("j2", "1", "a", 5, 9),
    ]:
        message.operations.add(
            job_id=job, operation_id=op, machine_id=machine, start=start, end=end
        )
    return message


def test_svg_has_one_bar_per_operation_and_the_downtime(tmp_path):
    source = tmp_path / "s.json"
    source.write_text(json_format.MessageToJson(schedule()))
    out = tmp_path / "chart.svg"
    assert gantt.main(["--schedule", str(source), "--out", str(out)]) == 0
    svg = out.read_text()
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert svg.count("<title>") == 4
    assert "j2/1 [5, 9)" in svg
    assert 'fill="url(#down)"' in svg


def test_png_is_an_image_with_coloured_bars(tmp_path):
    source = tmp_path / "s.json"
    source.write_text(json_format.MessageToJson(schedule()))
    out = tmp_path / "chart.png"
    assert gantt.main(["--schedule", str(source), "--out", str(out)]) == 0
    image = cv2.imdecode(np.frombuffer(out.read_bytes(), np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[1] == gantt.WIDTH
    coloured = (image.max(axis=2).astype(int) - image.min(axis=2)) > 60
    assert coloured.sum() > 1000


def test_unknown_format_is_refused(tmp_path):
    with pytest.raises(SystemExit):
        gantt.main(["--schedule", "x.json", "--out", str(tmp_path / "chart.gif")])
