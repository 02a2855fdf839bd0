"""The Grafana dashboard is well formed, its PromQL parses, and it uses the metric names
the services really export."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml

from services.runtime.metrics import ServiceMetrics
from tests.ops.tools import require_tool

DASHBOARD = Path(__file__).resolve().parents[2] / "ops" / "grafana" / "manufacturing-ai.json"
SUFFIXES = ("", "_total", "_bucket", "_sum", "_count")
# Names outside the call metrics: recording rules, Prometheus, Envoy, exporters, backups,
# and the domain counters the services add through ServiceParts.collectors.
EXTERNAL_PREFIXES = (
    "job:", "up", "ALERTS", "envoy_", "pg_", "ops_backup_", "scheduling_", "quality_",
    "maintenance_", "model_",
)  # fmt: skip
NAME = re.compile(r"\b([A-Za-z_:][A-Za-z0-9_:]*)\s*(?=\{|\[|\)|$)")
PROMQL_WORDS = {"by", "sum", "max", "rate", "increase", "count", "time", "histogram_quantile"}


def panels() -> list[dict]:
    return [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]


def expressions() -> list[str]:
    return [t["expr"] for p in panels() for t in p["targets"]]


def test_dashboard_is_well_formed():
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert {v["name"] for v in dashboard["templating"]["list"]} == {"datasource", "job"}
    boxes = [p["gridPos"] for p in dashboard["panels"]]
    for i, a in enumerate(boxes):
        assert a["x"] + a["w"] <= 24
        for b in boxes[i + 1 :]:
            overlap_x = a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
            overlap_y = a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]
            assert not (overlap_x and overlap_y), (a, b)
    assert all(p["targets"] and p["title"] for p in panels())


def test_every_expression_is_valid_promql(tmp_path):
    promtool = require_tool("promtool", "Debian package prometheus")
    rules = [
        {"record": f"dashboard:panel_{i}", "expr": expr.replace("$job", "scheduling")}
        for i, expr in enumerate(expressions())
    ]
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_call_and_process_metric_names_are_the_ones_the_services_export():
    metrics = ServiceMetrics(service="quality", version="1", git_revision="x", color="")
    exported = {family.name for family in metrics.registry.collect()}
    used = {
        name
        for expr in expressions()
        for name in NAME.findall(re.sub(r'"[^"]*"|by \([^)]*\)', "", expr))
        if name not in PROMQL_WORDS
    }
    ours = {n for n in used if n.startswith(("grpc_server_", "process_", "service_build_info"))}
    assert {"grpc_server_handled_total", "grpc_server_handling_seconds_bucket"} <= ours
    for name in ours:
        assert any(name == base + suffix for base in exported for suffix in SUFFIXES), name
    unknown = used - ours - {n for n in used if n.startswith(EXTERNAL_PREFIXES)}
    assert not unknown, unknown
