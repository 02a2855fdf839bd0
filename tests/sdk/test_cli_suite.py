"""Each ``mfg`` command against the local suite through the real Envoy, including the
pictures it writes (opened, measured and looked at, not only found)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from services.scheduling.gantt import LEFT, ROW, TOP
from tests.quality.test_inspection_service import texture
from tests.sdk import pictures
from tests.sdk.test_cli import PROBLEM, mfg

pytestmark = pytest.mark.envoy

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
EXIT = {"OK": 0, "WARN": 7, "FAIL": 8}  # mfg ops check


@pytest.fixture
def problem(tmp_path) -> Path:
    path = tmp_path / "problem.yaml"
    path.write_text(PROBLEM)
    return path


def test_streaming_solve_reports_each_improvement_and_draws_the_gantt(local_suite, problem):
    gantt = problem.with_name("plan.png")
    completed = mfg(
        local_suite.gateway, "--json", "schedule", "solve", str(problem),
        "--stream", "--time-limit", "2", "--gantt", str(gantt),
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    replies = [json.loads(line) for line in completed.stdout.splitlines()]
    makespans = [int(r["schedule"]["makespan"]) for r in replies]
    assert makespans == sorted(makespans, reverse=True)  # each one improves (or holds)
    assert replies[-1]["final"] and replies[-1]["schedule"]["id"]
    assert makespans[-1] == 7
    assert not any(r.get("final") for r in replies[:-1])

    image = pictures.read_png(gantt)
    assert image.shape[:2] == (TOP + ROW * 2 + 40, pictures.GANTT_WIDTH)
    bars = pictures.colourful(image, spread=30)
    end = LEFT + (pictures.GANTT_WIDTH - LEFT - 20)  # the makespan's end on the axis
    for row in range(2):  # each machine is busy for 6 of the 7 time units
        band = bars[TOP + row * ROW + 4 : TOP + (row + 1) * ROW - 4, LEFT:end]
        assert 0.8 < band.any(axis=0).mean() < 0.92
    assert not bars[:, end + 2 :].any()


def test_solve_with_progress_prints_the_stored_schedule(local_suite, problem):
    completed = mfg(
        local_suite.gateway, "schedule", "solve", str(problem), "--stream", "--time-limit", "1"
    )
    assert completed.returncode == 0, completed.stderr
    assert "makespan 7" in completed.stdout
    assert "flange" in completed.stdout


def test_chart_of_a_stored_characteristic_with_its_picture(local_suite, tmp_path):
    request = yaml.safe_load((EXAMPLES / "measurements.yaml").read_text())
    request["characteristic"] = "cli-test/ring/diameter"
    source = tmp_path / "measurements.json"
    source.write_text(json.dumps(request))
    recorded = mfg(local_suite.gateway, "call", "quality", "RecordMeasurements", "-d", str(source))
    assert recorded.returncode == 0, recorded.stderr
    png = tmp_path / "chart.png"
    args = ("quality", "chart", request["characteristic"], "--type", "xbar_r", "--rules", "nelson")
    completed = mfg(local_suite.gateway, "--json", *args, "--png", str(png))
    assert completed.returncode == 0, completed.stderr
    means, ranges = json.loads(completed.stdout)["chart"]["series"]
    assert (means["statistic"], ranges["statistic"]) == ("xbar", "range")
    assert [p.get("subgroup_index", 0) for p in means["points"] if p.get("out_of_control")] == [24]

    image = pictures.read_png(png)
    height, width = pictures.CHART_PANEL
    assert image.shape[:2] == (2 * height, width)  # X-bar above R
    for panel in (image[:height], image[height:]):
        assert pictures.chart_points(panel[pictures.CHART_PLOT]).sum() > 500
        assert pictures.red(panel).any()  # the control limits
    # The last subgroup's mean is circled: red over many rows at its x, not just a line.
    last_x = 70 + int((980 - 70) * 24.5 / 25)
    circled_rows = pictures.red(image[:height, last_x - 8 : last_x + 9]).any(axis=1)
    assert circled_rows.sum() >= 8

    table = mfg(local_suite.gateway, *args)
    assert table.returncode == 0, table.stderr
    assert "xbar" in table.stdout and "nelson_1 at subgroup 24" in table.stdout


def test_chart_from_a_request_file_draws_one_panel_for_an_attribute_chart(local_suite, tmp_path):
    defectives = [3, 2, 4, 3, 2, 3, 4, 2, 3, 15, 3, 2, 4, 3, 2, 3, 4, 2, 3, 3]
    request = tmp_path / "p.yaml"
    request.write_text(
        "chart_type: CHART_TYPE_P\nsubgroups:\n"
        + "".join(f"  - {{count: {c}, size: 100}}\n" for c in defectives)
    )
    png = tmp_path / "p.png"
    completed = mfg(local_suite.gateway, "--json", "quality", "chart", str(request),
                    "--png", str(png))  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    (series,) = json.loads(completed.stdout)["chart"]["series"]
    assert [p.get("subgroup_index", 0) for p in series["points"] if p.get("out_of_control")] == [9]
    image = pictures.read_png(png)
    assert image.shape[:2] == pictures.CHART_PANEL
    assert pictures.chart_points(image[pictures.CHART_PLOT]).sum() > 300
    ninth_x = 70 + int((980 - 70) * 9.5 / len(defectives))
    assert pictures.red(image[:, ninth_x - 8 : ninth_x + 9]).any(axis=1).sum() >= 8


def test_inspect_writes_the_part_with_its_regions_boxed(local_suite, tmp_path):
    rng = np.random.default_rng(3)
    part = np.clip(rng.normal(120, 5, (200, 200)), 0, 255).astype(np.uint8)
    part[80:120, 60:140] = 250  # a bright patch
    source, overlay = tmp_path / "part.png", tmp_path / "overlay.png"
    cv2.imwrite(str(source), part)
    completed = mfg(
        local_suite.gateway, "--json", "quality", "inspect", str(source),
        "--model", "neu-surface", "--overlay", str(overlay),
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)["result"]
    assert result["model_name"] == "neu-surface" and result["regions"]

    image = pictures.read_png(overlay)
    assert image.shape[:2] == (400, 400)  # small parts are drawn twice as large
    enlarged = cv2.resize(cv2.cvtColor(part, cv2.COLOR_GRAY2BGR), None, fx=2, fy=2,
                          interpolation=cv2.INTER_NEAREST)  # fmt: skip
    drawn = np.abs(image.astype(np.int16) - enlarged).max(axis=2) > 40
    box = result["regions"][0]
    x0, x1 = 2 * box.get("x_min", 0), 2 * box["x_max"] - 1
    bottom = 2 * box["y_max"] - 1  # the bottom edge: the top one may be under the caption
    assert drawn[bottom, x0 : x1 + 1].mean() > 0.9
    assert pictures.colourful(image)[bottom, x0 : x1 + 1].mean() > 0.9
    inside = drawn[2 * box.get("y_min", 0) + 4 : bottom - 3, x0 + 4 : x1 - 3]
    assert not inside[inside.shape[0] // 2 :].any()  # the part itself is left as it was

    table = mfg(local_suite.gateway, "quality", "inspect", str(source))
    assert table.returncode == 0, table.stderr
    assert f"part.png: {result['verdict'].removeprefix('VERDICT_').lower()}" in table.stdout
    assert "Defect regions" in table.stdout and result["probabilities"][0]["label"] in table.stdout
    anomaly = mfg(
        local_suite.gateway, "quality", "inspect", str(source), "--model", "magnetic-tile"
    )
    assert anomaly.returncode == 0, anomaly.stderr
    assert "anomaly score" in anomaly.stdout and "threshold" in anomaly.stdout


def write_training_images(folder: Path, per_label: int = 6) -> list[tuple[Path, str]]:
    """Smooth noise labelled good and the same with stripes; one folder per label."""
    written = []
    for index in range(per_label):
        smooth = texture(index, 64)
        striped = smooth.copy()
        striped[:, ::4] = 255
        for label, image in (("good", smooth), ("striped", striped)):
            path = folder / label / f"{index:03d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), image)
            written.append((path, label))
    return written


def test_train_from_a_folder_then_inspect_with_the_promoted_version(local_suite, tmp_path):
    images = write_training_images(tmp_path / "images")
    completed = mfg(
        local_suite.gateway, "--json", "quality", "train", str(tmp_path / "images"),
        "--model", "cli-line", "--promote", timeout=300,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    reply = json.loads(completed.stdout)
    assert reply["model"]["active"] and reply["model"]["metrics"]["accuracy"] == 1.0
    assert reply["confusion_matrix"]["labels"] == ["good", "striped"]

    striped = next(path for path, label in images if label == "striped")
    judged = mfg(
        local_suite.gateway, "--json", "quality", "inspect", str(striped), "--model", "cli-line"
    )
    assert judged.returncode == 0, judged.stderr
    result = json.loads(judged.stdout)["result"]
    assert (result["defect_class"], result["model_version"]) == (
        "striped", reply["model"]["version"]
    )  # fmt: skip


def test_train_from_a_csv_list_shows_progress_and_the_confusion_matrix(local_suite, tmp_path):
    images = write_training_images(tmp_path / "images")
    listing = tmp_path / "labels.csv"
    with listing.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "label"])
        writer.writerows((path.relative_to(tmp_path), label) for path, label in images)
    completed = mfg(
        local_suite.gateway, "quality", "train", str(listing), "--model", "cli-csv", timeout=300
    )
    assert completed.returncode == 0, completed.stderr
    assert "not active until promoted" in completed.stdout
    assert "Held-out confusion matrix" in completed.stdout


def test_train_without_labelled_images_is_bad_input(local_suite, tmp_path):
    (tmp_path / "empty").mkdir()
    completed = mfg(local_suite.gateway, "quality", "train", str(tmp_path / "empty"),
                    "--model", "cli-line")  # fmt: skip
    assert completed.returncode == 2
    assert "no labelled images" in completed.stderr


def ops_targets(suite) -> list[str]:
    return [
        *(f"--service={name}=127.0.0.1:{port}" for name, port in suite.ports.items()),
        f"--admin=127.0.0.1:{suite.admin}",
        f"--data-dir={suite.data_dir}",
    ]


def test_ops_check_exit_code_follows_the_report(local_suite):
    completed = mfg(local_suite.gateway, "--json", "ops", "check", "--daily",
                    *ops_targets(local_suite))  # fmt: skip
    report = json.loads(completed.stdout)
    assert completed.returncode == EXIT[report["status"]], completed.stderr
    statuses = {check["name"]: check["status"] for check in report["checks"]}
    assert statuses["gateway"] == "OK"  # found through mfg's --target
    assert all(statuses[f"service {name}"] == "OK" for name in local_suite.ports)


def test_ops_check_with_a_service_down_exits_8(local_suite):
    completed = mfg(
        local_suite.gateway, "--json", "ops", "check", "--daily",
        "--service=quality=127.0.0.1:1", f"--admin=127.0.0.1:{local_suite.admin}",
        f"--data-dir={local_suite.data_dir}",
    )  # fmt: skip
    assert completed.returncode == 8, completed.stdout + completed.stderr
    statuses = {c["name"]: c["status"] for c in json.loads(completed.stdout)["checks"]}
    assert statuses["service quality"] == "FAIL"


def test_ops_check_needs_a_period(local_suite):
    completed = mfg(local_suite.gateway, "ops", "check")
    assert completed.returncode == 2
    assert "--daily or --weekly" in completed.stderr


def rollout_status(suite) -> dict:
    completed = mfg(suite.gateway, "--json", "rollout", "status", "--data-dir", str(suite.data_dir))
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def live_color(status: dict, service: str) -> str:
    return next(color for color, c in status["services"][service].items() if c["live"])


def test_rollout_status_then_a_blue_green_rollout(local_suite):
    before = rollout_status(local_suite)
    assert set(before["services"]) == {"scheduling", "quality", "maintenance"}
    live = live_color(before, "scheduling")
    version = before["services"]["scheduling"][live]["version"]
    completed = mfg(
        local_suite.gateway, "rollout", "start", "scheduling", "--version", version,
        "--strategy", "blue-green", "--data-dir", str(local_suite.data_dir),
        "--step-seconds", "0.5", "--drain-quiet-seconds", "0.5", timeout=300,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout + completed.stderr
    after = rollout_status(local_suite)
    assert live_color(after, "scheduling") != live
    assert after["last_rollouts"][-1]["outcome"] == "completed"
    history = mfg(local_suite.gateway, "--json", "rollout", "history",
                  "--data-dir", str(local_suite.data_dir))  # fmt: skip
    assert history.returncode == 0, history.stderr
    last = json.loads(history.stdout.splitlines()[-1])
    assert (last["service"], last["to"]["version"]) == ("scheduling", version)
    info = mfg(local_suite.gateway, "--json", "info")  # the suite still answers
    assert info.returncode == 0, info.stderr


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("--version", "99.0.0", "--strategy", "blue-green"), 3),  # no such release
        (("--version", "1.0.0", "--strategy", "sideways"), 2),  # refused by its parser
    ],
)
def test_rollout_that_cannot_start(local_suite, args, code):
    completed = mfg(local_suite.gateway, "rollout", "start", "quality", *args,
                    "--data-dir", str(local_suite.data_dir))  # fmt: skip
    assert completed.returncode == code, completed.stdout + completed.stderr
