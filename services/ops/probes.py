"""What the checks look at: gRPC health and info, /metrics, Envoy admin, the host."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

SERVICES = ("scheduling", "quality", "maintenance")
SERVER_FAULTS = frozenset({"UNKNOWN", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "DEADLINE_EXCEEDED"})


def full_name(service: str) -> str:
    return f"manufacturing.{service}.v1.{service.capitalize()}Service"


def health(address: str, service: str, timeout: float = 3) -> str:
    """grpc.health.v1 status name of ``service`` at ``address``, or UNREACHABLE."""
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(
                health_pb2.HealthCheckRequest(service=full_name(service)), timeout=timeout
            )
        except grpc.RpcError as error:
            code = error.code()
            return "UNREACHABLE" if code == grpc.StatusCode.UNAVAILABLE else str(code.name)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def service_info(address: str, service: str, timeout: float = 3) -> dict[str, Any]:
    """The service's GetServiceInfo reply as a dict (version, git revision, color...)."""
    messages = importlib.import_module(f"manufacturing.{service}.v1.{service}_service_pb2")
    stubs = importlib.import_module(f"manufacturing.{service}.v1.{service}_service_pb2_grpc")
    with grpc.insecure_channel(address) as channel:
        stub = getattr(stubs, f"{service.capitalize()}ServiceStub")(channel)
        reply = stub.GetServiceInfo(messages.GetServiceInfoRequest(), timeout=timeout)
    info = reply.info
    return {
        "service_name": info.service_name,
        "version": info.version,
        "git_revision": info.git_revision,
        "color": info.color,
        "environment": info.environment,
        "model_versions": dict(info.model_versions),
        "started": info.start_time.ToDatetime().isoformat() if info.HasField("start_time") else "",
    }


def http_get(url: str, timeout: float = 3) -> str:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url}")
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (checked above)
        return str(response.read().decode("utf-8", errors="replace"))


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def scrape(address: str, timeout: float = 3) -> list[Sample]:
    text = http_get(f"http://{address}/metrics", timeout)
    return [
        Sample(s.name, dict(s.labels), float(s.value))
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def total(samples: Iterable[Sample], name: str, **match: str) -> float:
    return sum(
        s.value
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in match.items())
    )


def call_stats(samples: list[Sample]) -> dict[str, Any]:
    """Calls, server faults and availability since the process started; p95 latency."""
    handled = [s for s in samples if s.name == "grpc_server_handled_total"]
    calls = sum(s.value for s in handled)
    faults = sum(s.value for s in handled if s.labels.get("grpc_code") in SERVER_FAULTS)
    by_code: dict[str, float] = {}
    for s in handled:
        by_code[s.labels["grpc_code"]] = by_code.get(s.labels["grpc_code"], 0) + s.value
    return {
        "calls": int(calls),
        "server_faults": int(faults),
        "availability": 1.0 if calls == 0 else round(1 - faults / calls, 6),
        "calls_by_code": {k: int(v) for k, v in sorted(by_code.items())},
        "p95_seconds": quantile(samples, 0.95),
    }


def quantile(samples: list[Sample], q: float) -> float | None:
    """Upper bucket bound holding the q-quantile of every unary call's latency."""
    buckets: dict[float, float] = {}
    for s in samples:
        if s.name == "grpc_server_handling_seconds_bucket" and s.labels.get("grpc_type") == "unary":
            bound = float(s.labels["le"])
            buckets[bound] = buckets.get(bound, 0) + s.value
    if not buckets or buckets.get(float("inf"), 0) == 0:
        return None
    count = buckets[float("inf")]
    for bound in sorted(buckets):
        if buckets[bound] >= q * count:
            return bound
    return None


def process_stats(samples: list[Sample]) -> dict[str, Any]:
    cpu = total(samples, "process_cpu_seconds_total")
    started = total(samples, "process_start_time_seconds")
    uptime = max(time.time() - started, 1e-3) if started else None
    return {
        "rss_bytes": int(total(samples, "process_resident_memory_bytes")),
        "cpu_seconds": round(cpu, 2),
        "cpu_cores_average": round(cpu / uptime, 3) if uptime else None,
        "uptime_seconds": round(uptime) if uptime else None,
        "open_fds": int(total(samples, "process_open_fds")),
    }


def envoy_membership(admin: str) -> dict[str, dict[str, int]]:
    """``{service: {"healthy": n, "total": m}}`` over both colors, from Envoy's admin."""
    text = http_get(f"http://{admin}/stats?filter=membership_(healthy|total)")
    found: dict[str, dict[str, int]] = {}
    for line in text.splitlines():
        name, _, value = line.partition(": ")
        parts = name.split(".")
        if len(parts) != 3 or parts[0] != "cluster":
            continue
        service = parts[1].rsplit("-", 1)[0]
        if service in SERVICES:
            entry = found.setdefault(service, {"healthy": 0, "total": 0})
            entry[parts[2].removeprefix("membership_")] += int(value)
    return found


def host_stats(disk_path: Path, sample_s: float = 0.5) -> dict[str, Any]:
    """CPU, memory, disk space and disk / network I/O rates of this host (Linux /proc)."""
    before_cpu, before_disk, before_net = _cpu_times(), _disk_bytes(), _net_bytes()
    time.sleep(sample_s)
    after_cpu, after_disk, after_net = _cpu_times(), _disk_bytes(), _net_bytes()
    busy = (after_cpu[0] - before_cpu[0]) / max(after_cpu[1] - before_cpu[1], 1)
    memory = _meminfo()
    usage = shutil.disk_usage(disk_path if disk_path.exists() else Path("/"))
    return {
        "cpu_busy": round(busy, 3),
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()),
        "memory_total_bytes": memory.get("MemTotal", 0),
        "memory_available_bytes": memory.get("MemAvailable", 0),
        "disk_path": str(disk_path),
        "disk_total_bytes": usage.total,
        "disk_free_bytes": usage.free,
        "disk_read_bytes_per_s": round((after_disk[0] - before_disk[0]) / sample_s),
        "disk_write_bytes_per_s": round((after_disk[1] - before_disk[1]) / sample_s),
        "net_receive_bytes_per_s": round((after_net[0] - before_net[0]) / sample_s),
        "net_transmit_bytes_per_s": round((after_net[1] - before_net[1]) / sample_s),
    }


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError:
        return ""


def _cpu_times() -> tuple[int, int]:
    fields = [int(x) for x in (_read("/proc/stat").splitlines() or ["cpu 0"])[0].split()[1:]]
    idle = sum(fields[3:5]) if len(fields) >= 5 else 0
    return sum(fields) - idle, sum(fields)


def _meminfo() -> dict[str, int]:
    found: dict[str, int] = {}
    for line in _read("/proc/meminfo").splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            found[key] = int(parts[0]) * (1024 if len(parts) > 1 else 1)
    return found


def _disk_bytes() -> tuple[int, int]:
    # Whole devices only (partitions would count twice); sectors are 512 bytes.
    try:
        devices = {p.name for p in Path("/sys/block").iterdir() if not p.name.startswith("loop")}
    except OSError:
        devices = set()
    read = written = 0
    for line in _read("/proc/diskstats").splitlines():
        parts = line.split()
        if len(parts) >= 10 and parts[2] in devices:
            read += int(parts[5]) * 512
            written += int(parts[9]) * 512
    return read, written


def _net_bytes() -> tuple[int, int]:
    received = sent = 0
    for line in _read("/proc/net/dev").splitlines()[2:]:
        name, _, rest = line.partition(":")
        parts = rest.split()
        if name.strip() != "lo" and len(parts) >= 9:
            received += int(parts[0])
            sent += int(parts[8])
    return received, sent


def prometheus_query(base_url: str, query: str, timeout: float = 10) -> list[dict[str, Any]]:
    url = f"{base_url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    body = json.loads(http_get(url, timeout))
    if body.get("status") != "success":
        raise RuntimeError(f"prometheus query failed: {body.get('error', body)}")
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def alertmanager_alerts(base_url: str, timeout: float = 5) -> list[dict[str, Any]]:
    alerts: list[dict[str, Any]] = json.loads(
        http_get(f"{base_url.rstrip('/')}/api/v2/alerts?active=true&silenced=false", timeout)
    )
    return alerts


def maintenance_open_alerts(address: str, wait_s: float = 1.5) -> dict[str, int] | None:
    """Unacknowledged machine alerts by severity, replayed from the maintenance service's
    WatchAlerts stream (``resume_after="0"``: every retained alert, then new ones until
    ``wait_s``); None when this contract has no alert stream."""
    messages = importlib.import_module("manufacturing.maintenance.v1.maintenance_service_pb2")
    stubs = importlib.import_module("manufacturing.maintenance.v1.maintenance_service_pb2_grpc")
    if not hasattr(messages, "WatchAlertsRequest"):
        return None
    latest: dict[str, Any] = {}
    with grpc.insecure_channel(address) as channel:
        stream = stubs.MaintenanceServiceStub(channel).WatchAlerts(
            messages.WatchAlertsRequest(resume_after="0"), timeout=wait_s
        )
        try:
            for reply in stream:
                latest[reply.alert.id] = reply.alert
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                raise
    counts = {"P0": 0, "P1": 0, "P2": 0}
    for alert in latest.values():
        if not alert.acknowledged:
            name = (
                alert.DESCRIPTOR.fields_by_name["severity"]
                .enum_type.values_by_number[alert.severity]
                .name.removeprefix("SEVERITY_")
            )
            counts[name] = counts.get(name, 0) + 1
    return counts
