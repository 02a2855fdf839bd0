"""The alert rules load, their unit tests pass, and each alert is classed and documented."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from tests.ops.tools import require_tool

OPS = Path(__file__).resolve().parents[2] / "ops"
RULES = OPS / "prometheus" / "rules" / "manufacturing.rules.yml"
TESTS = sorted((OPS / "prometheus" / "tests").glob("*.test.yml"))


def alerts() -> list[dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_checks_the_rules_and_the_scrape_config():
    promtool = require_tool("promtool", "Debian package prometheus")
    for args in (["check", "rules", str(RULES)], ["check", "config", "prometheus.yml"]):
        done = subprocess.run(
            [promtool, *args], cwd=OPS / "prometheus", capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_unit_tests_pass():
    promtool = require_tool("promtool", "Debian package prometheus")
    assert TESTS
    done = subprocess.run(
        [promtool, "test", "rules", *map(str, TESTS)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == len(TESTS)


def test_every_alert_has_a_fault_class_and_a_runbook_with_the_four_steps():
    found = alerts()
    assert {rule["labels"]["severity"] for rule in found} == {"P0", "P1", "P2"}
    for rule in found:
        runbook = OPS.parent / rule["annotations"]["runbook_url"]
        assert runbook.is_file(), f"{rule['alert']}: no runbook at {runbook}"
        text = runbook.read_text()
        for section in ("## Assess", "## Isolate", "## Recover", "## Record"):
            assert section in text, f"{runbook.name} lacks {section}"
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_every_p0_alert_is_fired_by_a_unit_test():
    fired: set[str] = set()
    for path in TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                if check.get("exp_alerts"):
                    assert all(a["exp_labels"].get("severity") for a in check["exp_alerts"])
                    fired.add(check["alertname"])
    p0 = {rule["alert"] for rule in alerts() if rule["labels"]["severity"] == "P0"}
    assert len(p0) >= 8
    assert p0 <= fired, f"P0 alerts without a firing test: {sorted(p0 - fired)}"


def test_alert_names_are_unique_and_camel_case():
    names = [rule["alert"] for rule in alerts()]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[A-Z][A-Za-z0-9]+", name) for name in names)
