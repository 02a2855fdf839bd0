"""The operator's daily and weekly checks, each a list of coloured lines (or JSON).

Daily: health and version of every service and of the gateway, availability, CPU,
memory, disk and network I/O, open alerts by severity. Weekly: latency and error
trends, a summary of logged errors, a dependency vulnerability scan, backup age and
the last verified restore.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc

from services.ops import probes
from services.ops.backup import BackupState
from services.ops.report import Check, Report, Status

MiB = 1024 * 1024
BACKUP_FAIL_AGE_S = 13 * 3600  # two missed 6-hourly incrementals (alert BackupMissing)
BACKUP_WARN_AGE_S = 7 * 3600
VERIFY_WARN_AGE_S = 8 * 86400  # weekly verify plus a day (alert BackupRestoreNotVerified)
ERROR_LEVELS = frozenset({"ERROR", "CRITICAL"})


@dataclass
class Targets:
    """Where the suite runs; defaults are the local suite of `make up`."""

    services: dict[str, str] = field(
        default_factory=lambda: {s: f"127.0.0.1:{50051 + i}" for i, s in enumerate(probes.SERVICES)}
    )
    metrics: dict[str, str] = field(
        default_factory=lambda: {s: f"127.0.0.1:{9451 + i}" for i, s in enumerate(probes.SERVICES)}
    )
    gateway: str | None = "127.0.0.1:8080"
    admin: str | None = "127.0.0.1:9901"
    data_dir: Path = Path("var")
    log_dir: Path = Path("var/logs")
    backup_state: Path = Path("var/backup-state")
    prometheus: str | None = None
    alertmanager: str | None = None
    requirements: Path = Path("requirements/constraints.txt")


def daily(targets: Targets) -> Report:
    report = Report("daily")
    for service, address in targets.services.items():
        report.add(check_service(service, address, targets.metrics.get(service)))
    if targets.gateway:
        report.add(check_gateway(targets.gateway, targets.admin, list(targets.services)))
    report.add(check_host(targets.data_dir))
    report.add(check_alerts(targets))
    if "maintenance" in targets.services:
        report.add(check_machine_alerts(targets.services["maintenance"]))
    return report


def weekly(targets: Targets) -> Report:
    report = Report("weekly")
    for service in targets.services:
        report.add(check_trend(service, targets))
    report.add(check_logs(targets.log_dir))
    report.add(check_dependencies(targets.requirements))
    report.add(check_backups(targets.backup_state))
    return report


def _mib(value: float) -> str:
    return f"{value / MiB:.0f} MiB"


def _percent(value: float) -> str:
    return f"{100 * value:.2f}%"


def check_service(service: str, address: str, metrics: str | None) -> Check:
    name = f"service {service}"
    data: dict[str, Any] = {"service": service, "address": address}
    data["health"] = probes.health(address, service)
    if data["health"] == "UNREACHABLE" or data["health"] == "DEADLINE_EXCEEDED":
        return Check(name, Status.FAIL, f"{data['health']} at {address}", data)
    try:
        data["info"] = probes.service_info(address, service)
    except grpc.RpcError as error:
        data["info_error"] = str(error.code())
    if data["health"] != "SERVING" or "info" not in data:
        return Check(name, Status.FAIL, f"{data['health']} at {address}", data)
    info = data["info"]
    summary = f"SERVING  v{info['version']}" + (f" ({info['color']})" if info["color"] else "")
    status = Status.OK
    if metrics:
        try:
            samples = probes.scrape(metrics)
        except OSError as error:
            data["metrics_error"] = str(error)
            return Check(name, Status.WARN, f"{summary}; metrics at {metrics}: {error}", data)
        data["calls"] = probes.call_stats(samples)
        data["process"] = probes.process_stats(samples)
        calls, process = data["calls"], data["process"]
        summary += (
            f"  avail {_percent(calls['availability'])} of {calls['calls']} calls"
            f"  cpu {process['cpu_cores_average']} cores  rss {_mib(process['rss_bytes'])}"
        )
        if calls["availability"] < 0.95:
            status = Status.FAIL
        elif calls["availability"] < 0.99:
            status = Status.WARN
    return Check(name, status, summary, data)


def check_gateway(gateway: str, admin: str | None, services: list[str]) -> Check:
    data: dict[str, Any] = {"address": gateway, "admin": admin, "services": {}}
    problems: list[str] = []
    if admin:
        try:
            data["ready"] = probes.http_get(f"http://{admin}/ready").strip()
            data["membership"] = probes.envoy_membership(admin)
        except OSError as error:
            data["ready"] = f"unreachable: {error}"
        if data["ready"] != "LIVE":
            problems.append(f"admin {data['ready']}")
    parts = []
    for service in services:
        entry: dict[str, Any] = {}
        try:
            entry["version"] = probes.service_info(gateway, service)["version"]
        except grpc.RpcError as error:
            entry["error"] = str(error.code().name)
            problems.append(f"{service} {entry['error']}")
        member = data.get("membership", {}).get(service)
        if member is not None:
            entry.update(member)
            if member["healthy"] == 0:
                problems.append(f"{service} has no healthy host")
        data["services"][service] = entry
        hosts = f" {member['healthy']}/{member['total']} hosts" if member else ""
        parts.append(f"{service} v{entry.get('version', '?')}{hosts}")
    summary = ("; ".join(problems) + " | " if problems else "LIVE  ") + ", ".join(parts)
    return Check("gateway", Status.FAIL if problems else Status.OK, summary, data)


def check_host(data_dir: Path) -> Check:
    stats = probes.host_stats(data_dir)
    free = stats["disk_free_bytes"] / max(stats["disk_total_bytes"], 1)
    available = stats["memory_available_bytes"] / max(stats["memory_total_bytes"], 1)
    status = Status.OK
    if free < 0.05:
        status = Status.FAIL
    # CPU is reported, not judged: a half-second sample on a shared host is noise; the
    # HighCpu alert judges it over 15 minutes.
    elif free < 0.10 or available < 0.10:
        status = Status.WARN
    summary = (
        f"cpu {_percent(stats['cpu_busy'])} of {stats['cpu_count']}  "
        f"mem {_mib(stats['memory_available_bytes'])} free of {_mib(stats['memory_total_bytes'])}  "
        f"disk {_percent(free)} free  "
        f"disk io r/w {stats['disk_read_bytes_per_s'] // 1024}/"
        f"{stats['disk_write_bytes_per_s'] // 1024} KiB/s  "
        f"net rx/tx {stats['net_receive_bytes_per_s'] // 1024}/"
        f"{stats['net_transmit_bytes_per_s'] // 1024} KiB/s"
    )
    return Check("host", status, summary, stats)


def check_alerts(targets: Targets) -> Check:
    """Open alerts by severity, from Alertmanager or else Prometheus's ALERTS."""
    counts: Counter[str] = Counter()
    try:
        if targets.alertmanager:
            for alert in probes.alertmanager_alerts(targets.alertmanager):
                counts[alert.get("labels", {}).get("severity", "none")] += 1
            source = targets.alertmanager
        elif targets.prometheus:
            for row in probes.prometheus_query(targets.prometheus, 'ALERTS{alertstate="firing"}'):
                counts[row["metric"].get("severity", "none")] += 1
            source = targets.prometheus
        else:
            return Check(
                "alerts",
                Status.OK,
                "skipped: give --alertmanager or --prometheus to count open alerts",
                {"skipped": True},
            )
    except (OSError, RuntimeError, ValueError) as error:
        return Check("alerts", Status.WARN, f"cannot read open alerts: {error}", {})
    by_severity = {s: counts.get(s, 0) for s in ("P0", "P1", "P2")}
    status = Status.FAIL if by_severity["P0"] else Status.WARN if by_severity["P1"] else Status.OK
    summary = "  ".join(f"{s}: {n}" for s, n in by_severity.items()) + f"  (from {source})"
    return Check("alerts", status, summary, {"open": by_severity, "source": source})


def check_machine_alerts(address: str) -> Check:
    """Open (unacknowledged) machine alerts the maintenance service raised, by severity."""
    try:
        counts = probes.maintenance_open_alerts(address)
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.UNIMPLEMENTED:
            return Check("machine alerts", Status.WARN, f"cannot read: {error.code().name}", {})
        counts = None  # an older service version, without the stream
    if counts is None:
        return Check(
            "machine alerts",
            Status.OK,
            "skipped: this maintenance contract has no alert stream",
            {"skipped": True},
        )
    summary = "  ".join(f"{s}: {n}" for s, n in counts.items()) + "  (unacknowledged)"
    return Check(
        "machine alerts", Status.WARN if counts.get("P0") else Status.OK, summary, {"open": counts}
    )


def check_trend(service: str, targets: Targets) -> Check:
    name = f"trend {service}"
    if targets.prometheus:
        return _trend_from_prometheus(name, service, targets.prometheus)
    metrics = targets.metrics.get(service)
    if not metrics:
        return Check(name, Status.WARN, "no metrics address and no --prometheus", {})
    try:
        stats = probes.call_stats(probes.scrape(metrics))
    except OSError as error:
        return Check(name, Status.WARN, f"metrics at {metrics}: {error}", {})
    p95 = stats["p95_seconds"]
    faults = 1 - stats["availability"]
    status = Status.WARN if faults > 0.01 else Status.OK
    summary = (
        f"since start: p95 <= {p95 if p95 is not None else '-'} s, "
        f"server faults {_percent(faults)} of {stats['calls']} calls "
        "(give --prometheus for week over week)"
    )
    return Check(name, status, summary, {"since_start": stats})


def _trend_from_prometheus(name: str, service: str, prometheus: str) -> Check:
    def value(query: str) -> float | None:
        rows = probes.prometheus_query(prometheus, query)
        return float(rows[0]["value"][1]) if rows else None

    try:
        weeks = {}
        for label, offset in (("this_week", ""), ("last_week", " offset 7d")):
            weeks[label] = {
                "p95_seconds": value(
                    f'avg_over_time(job:grpc_server_handling_seconds:p95_rate5m{{job="{service}"}}[7d]{offset})'
                ),
                "fault_ratio": value(
                    f'avg_over_time(job:grpc_server_faults:ratio_rate5m{{job="{service}"}}[7d]{offset})'
                ),
            }
    except (OSError, RuntimeError, ValueError) as error:
        return Check(name, Status.WARN, f"prometheus: {error}", {})
    now, before = weeks["this_week"], weeks["last_week"]
    status = Status.OK
    if (now["fault_ratio"] or 0) > 0.01:
        status = Status.WARN
    if (
        now["p95_seconds"]
        and before["p95_seconds"]
        and now["p95_seconds"] > 1.5 * before["p95_seconds"]
    ):
        status = Status.WARN
    summary = (
        f"last week -> this week: p95 {before['p95_seconds']} -> {now['p95_seconds']} s, "
        f"server faults {before['fault_ratio']} -> {now['fault_ratio']}"
    )
    return Check(name, status, summary, weeks)


def _log_lines(path: Path) -> Iterator[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as lines:
        yield from lines


def check_logs(log_dir: Path, days: int = 7) -> Check:
    """ERROR/CRITICAL lines of the JSON logs (rotated ones too) of the last ``days``."""
    if not log_dir.is_dir():
        return Check("logs", Status.OK, f"skipped: no log directory {log_dir}", {"skipped": True})
    since = datetime.now(UTC) - timedelta(days=days)
    errors: Counter[str] = Counter()
    messages: Counter[str] = Counter()
    for path in sorted(log_dir.iterdir()):
        if not path.is_file() or ".log" not in path.name:
            continue
        if datetime.fromtimestamp(path.stat().st_mtime, UTC) < since:
            continue
        for line in _log_lines(path):
            if '"level"' not in line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if not isinstance(record, dict) or record.get("level") not in ERROR_LEVELS:
                continue
            errors[str(record.get("service", path.name.split(".")[0]))] += 1
            messages[str(record.get("message", ""))[:80]] += 1
    total = sum(errors.values())
    top = messages.most_common(3)
    summary = f"{total} error lines in {days} days" + (
        ": " + ", ".join(f"{s} {n}" for s, n in errors.most_common()) if total else ""
    )
    if top:
        summary += "; most frequent: " + "; ".join(f"{m!r} x{n}" for m, n in top)
    return Check(
        "logs",
        Status.WARN if total else Status.OK,
        summary,
        {"errors_by_service": dict(errors), "top_messages": top, "log_dir": str(log_dir)},
    )


def _pip_audit() -> str | None:
    """pip-audit beside this interpreter (the virtualenv, not activated) or on PATH."""
    beside = Path(sys.executable).with_name("pip-audit")
    return str(beside) if beside.is_file() else shutil.which("pip-audit")


def check_dependencies(requirements: Path, timeout_s: float = 600) -> Check:
    """Known vulnerabilities (PyPI's advisory database, via pip-audit) in ``requirements``.

    The file pins every transitive dependency (requirements/constraints.txt), so it is
    audited as it is (--no-deps --disable-pip): no virtualenv is built to resolve it.
    """
    scanner = _pip_audit()
    if scanner is None:
        return Check(
            "dependencies",
            Status.WARN,
            "no vulnerability scanner installed (pip install pip-audit); not scanned",
            {"scanned": False},
        )
    command = [scanner, "-r", str(requirements), "--no-deps", "--disable-pip"]
    try:
        done = subprocess.run(
            [*command, "--format", "json", "--progress-spinner", "off"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        found = json.loads(done.stdout or "{}")
    except (subprocess.TimeoutExpired, ValueError) as error:
        return Check("dependencies", Status.WARN, f"pip-audit failed: {error}", {})
    dependencies = found.get("dependencies") or []
    if not dependencies:
        return Check("dependencies", Status.WARN, f"pip-audit: {done.stderr.strip()[-200:]}", {})
    vulnerable = [
        {"name": d["name"], "version": d["version"], "ids": [v["id"] for v in d["vulns"]]}
        for d in dependencies
        if d.get("vulns")
    ]
    # A package PyPI does not know (a private or yanked release) is not proven safe.
    unaudited = sorted(d["name"] for d in dependencies if "skip_reason" in d)
    summary = f"{len(vulnerable)} vulnerable of {len(dependencies)} packages"
    if vulnerable:
        summary += ": " + ", ".join(
            f"{v['name']} {v['version']} ({', '.join(v['ids'][:3])})" for v in vulnerable[:5]
        )
    if unaudited:
        summary += f"; {len(unaudited)} not audited: " + ", ".join(unaudited[:5])
    status = Status.FAIL if vulnerable else Status.WARN if unaudited else Status.OK
    return Check(
        "dependencies",
        status,
        summary,
        {"vulnerable": vulnerable, "unaudited": unaudited, "command": " ".join(command)},
    )


def check_backups(state_dir: Path, now: float | None = None) -> Check:
    """Age of the last backup and of the last verified restore (``ops backup`` state)."""
    now = time.time() if now is None else now
    state = BackupState.load(state_dir / "state.json")
    data: dict[str, Any] = {"state_dir": str(state_dir)}
    if not state.last_backup:
        return Check("backups", Status.FAIL, f"no backup recorded in {state_dir}", data)
    last = max(state.last_backup.values())
    data["last_backup_age_s"] = round(now - last)
    data["last_backup"] = {
        k: datetime.fromtimestamp(v, UTC).isoformat() for k, v in state.last_backup.items()
    }
    status = Status.OK
    if now - last > BACKUP_FAIL_AGE_S:
        status = Status.FAIL
    elif now - last > BACKUP_WARN_AGE_S:
        status = Status.WARN
    summary = f"last backup {(now - last) / 3600:.1f} h ago"
    if state.last_verified_restore is None:
        status = max(status, Status.WARN)
        summary += ", restore never verified"
    else:
        age = now - state.last_verified_restore
        data["last_verified_restore_age_s"] = round(age)
        data["last_verified_backup"] = state.last_verified_backup
        summary += (
            f", last verified restore {age / 86400:.1f} days ago ({state.last_verified_backup})"
        )
        if age > VERIFY_WARN_AGE_S:
            status = max(status, Status.WARN)
    return Check("backups", status, summary, data)
