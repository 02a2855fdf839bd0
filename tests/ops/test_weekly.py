"""Weekly check parts: backups, logs, config backup, the dependency vulnerability scan."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import yaml

from services.ops import checks, configbackup
from services.ops.backup import BackupState, metrics_text
from services.ops.report import Status
from tests.ops.tools import require_pypi_json, require_tool

ROOT = Path(__file__).resolve().parents[2]
HOUR = 3600


def state_dir(tmp_path: Path, *, backup_age_h: float, verify_age_d: float | None) -> Path:
    now = time.time()
    BackupState(
        last_backup={"full": now - 20 * HOUR, "incr": now - backup_age_h * HOUR},
        last_verified_restore=None if verify_age_d is None else now - verify_age_d * 86400,
        last_verified_backup="20260301-011500F",
    ).save(tmp_path / "state" / "state.json")
    return tmp_path / "state"


def test_backup_age_and_verified_restore_decide_the_backup_line(tmp_path):
    fresh = checks.check_backups(state_dir(tmp_path, backup_age_h=2, verify_age_d=3))
    assert fresh.status is Status.OK
    assert "last backup 2.0 h ago" in fresh.summary and "3.0 days ago" in fresh.summary
    assert checks.check_backups(state_dir(tmp_path, backup_age_h=8, verify_age_d=3)).status is (
        Status.WARN
    )
    assert checks.check_backups(state_dir(tmp_path, backup_age_h=14, verify_age_d=3)).status is (
        Status.FAIL
    )
    never = checks.check_backups(state_dir(tmp_path, backup_age_h=2, verify_age_d=None))
    assert never.status is Status.WARN and "never verified" in never.summary
    assert checks.check_backups(tmp_path / "nothing").status is Status.FAIL


def test_metrics_text_carries_the_timestamps_the_alerts_read():
    text = metrics_text(
        "main", BackupState(last_backup={"full": 100.0}, last_verified_restore=50.0)
    )
    assert 'ops_backup_last_success_timestamp_seconds{stanza="main",type="full"} 100.0' in text
    assert 'ops_backup_last_verified_restore_timestamp_seconds{stanza="main"} 50.0' in text


def log_line(level: str, service: str, message: str) -> str:
    return json.dumps({"level": level, "service": service, "message": message}) + "\n"


def test_log_summary_counts_errors_in_plain_and_rotated_files(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "quality.log").write_text(
        log_line("INFO", "quality", "call")
        + log_line("ERROR", "quality", "model file missing")
        + "not json\n"
    )
    with gzip.open(logs / "quality.log.1.gz", "wt") as rotated:
        rotated.write(log_line("ERROR", "quality", "model file missing"))
        rotated.write(log_line("CRITICAL", "quality", "disk full"))
    (logs / "scheduling.log").write_text(log_line("WARNING", "scheduling", "slow"))
    check = checks.check_logs(logs)
    assert check.status is Status.WARN
    assert check.data["errors_by_service"] == {"quality": 3}
    assert check.data["top_messages"][0] == ("model file missing", 2)
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "a.log").write_text(log_line("INFO", "a", "fine"))
    assert checks.check_logs(clean).status is Status.OK


def test_config_backup_is_private_encrypted_and_restorable(tmp_path):
    config = tmp_path / "config"
    config.mkdir()
    (config / "base.yaml").write_text("defaults: {}\n")
    secret = tmp_path / "database-url"
    secret.write_text("postgresql://u:p@db/x")
    passphrase = tmp_path / "passphrase"
    passphrase.write_text("correct horse battery staple")

    written = configbackup.backup_config(
        [config, secret], tmp_path / "out", passphrase_file=passphrase
    )
    assert written.name.endswith(".tar.gz.enc")
    assert written.stat().st_mode & 0o777 == 0o600
    assert b"postgresql://" not in written.read_bytes()
    with tarfile.open(fileobj=io.BytesIO(configbackup.decrypt(written, passphrase))) as archive:
        names = archive.getnames()
        manifest = json.loads(archive.extractfile("MANIFEST.json").read())  # type: ignore[union-attr]
        restored = archive.extractfile(str(secret).lstrip("/")).read()  # type: ignore[union-attr]
    assert restored == b"postgresql://u:p@db/x"
    assert str(config / "base.yaml").lstrip("/") in names
    assert set(manifest["files"]) == {str(config / "base.yaml"), str(secret)}

    old = time.time() - 40 * 86400
    os.utime(written, (old, old))
    assert configbackup.prune(tmp_path / "out", keep_days=30) == [written]


def weekly(tmp_path: Path, requirements: str) -> tuple[int, dict]:
    """``ops check --weekly --json`` with its scan on a requirements file of its own."""
    (tmp_path / "requirements.txt").write_text(requirements)
    done = subprocess.run(
        [sys.executable, "-m", "services.ops", "check", "--weekly", "--json",
         "--service", "quality=127.0.0.1:1", "--data-dir", str(tmp_path),
         "--requirements", str(tmp_path / "requirements.txt")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return done.returncode, json.loads(done.stdout)


def test_weekly_command_prints_json_and_fails_without_backups(tmp_path):
    code, report = weekly(tmp_path, "")
    names = {c["name"]: c for c in report["checks"]}
    assert set(names) == {"trend quality", "logs", "dependencies", "backups"}
    assert names["backups"]["status"] == "FAIL"
    assert report["status"] == "FAIL" and code == 2


def dependencies_check(report: dict) -> dict:
    return next(c for c in report["checks"] if c["name"] == "dependencies")


def test_weekly_scan_reports_a_known_vulnerable_pin(tmp_path):
    """requests 2.19.1 leaks credentials on redirects (CVE-2018-18074, PYSEC-2018-28);
    pip-audit finds it in PyPI's advisory data and the weekly check fails on it."""
    require_tool("pip-audit", "pip package pip-audit (requirements/dev.txt)")
    require_pypi_json("https://pypi.org/pypi/requests/2.19.1/json")
    code, report = weekly(tmp_path, "requests==2.19.1\n")
    check = dependencies_check(report)
    assert check["status"] == "FAIL", check
    (found,) = check["vulnerable"]
    assert (found["name"], found["version"]) == ("requests", "2.19.1")
    assert "PYSEC-2018-28" in found["ids"] or "GHSA-x84v-xcm2-53pg" in found["ids"]
    assert "requests 2.19.1" in check["summary"]
    assert code == 2


def test_weekly_scan_never_calls_an_unaudited_package_safe(tmp_path):
    """A pin PyPI cannot vouch for (unknown there: private, or removed) is a warning,
    not "0 vulnerable"."""
    require_tool("pip-audit", "pip package pip-audit (requirements/dev.txt)")
    require_pypi_json("https://pypi.org/pypi/requests/json")
    _, report = weekly(tmp_path, "manufacturing-ai-unpublished-package==1.0\n")
    check = dependencies_check(report)
    assert check["status"] == "WARN", check
    assert check["vulnerable"] == []
    assert check["unaudited"] == ["manufacturing-ai-unpublished-package"]
    assert "--no-deps --disable-pip" in check["command"]
    assert "1 not audited" in check["summary"]


def test_ci_runs_the_weekly_scan_on_every_pin():
    """The pipeline audits what the weekly check audits, the same way."""
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci-cd.yml").read_text())
    commands = [step.get("run", "") for step in workflow["jobs"]["test"]["steps"]]
    (scan,) = [command for command in commands if "pip-audit" in command]
    assert "-r requirements/constraints.txt --no-deps --disable-pip" in scan
    assert str(checks.Targets.requirements) == "requirements/constraints.txt"
    assert "--strict" in scan  # an unaudited package fails CI; the weekly check warns
