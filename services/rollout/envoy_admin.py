"""What the rollout controller reads from Envoy's admin interface (127.0.0.1 only).

- per cluster, the calls by grpc-status, from the grpc_stats filter
  (``cluster.<c>.grpc.<Service>.<Method>.<code>``): gRPC errors travel in HTTP 200, so
  HTTP status counts would miss them;
- per cluster, active and total upstream requests (is a color drained?);
- per cluster, each host's health as Envoy's active checks see it;
- which route configuration version Envoy applied (did it load our file yet?).

A gateway with several replicas (Kubernetes) is read as one through :class:`EnvoyFleet`.
"""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

# Status codes that mean the version at fault, not the caller: UNKNOWN, DEADLINE_EXCEEDED,
# RESOURCE_EXHAUSTED, UNIMPLEMENTED (a method the new version lost), INTERNAL,
# UNAVAILABLE, DATA_LOSS. INVALID_ARGUMENT, NOT_FOUND, ... are answers, not failures.
SERVER_ERROR_CODES = frozenset({2, 4, 8, 12, 13, 14, 15})

_CODE_STAT = re.compile(r"^cluster\.(?P<cluster>[^.]+)\.grpc\.(?:.+\.)?(?P<code>\d+)$")


class AdminError(RuntimeError):
    """Envoy's admin interface did not answer as expected."""


@dataclass(frozen=True)
class CallCounts:
    """Completed calls of one cluster, by grpc-status."""

    by_code: dict[int, int]

    @property
    def total(self) -> int:
        return sum(self.by_code.values())

    @property
    def errors(self) -> int:
        return sum(n for code, n in self.by_code.items() if code in SERVER_ERROR_CODES)

    def since(self, earlier: CallCounts) -> CallCounts:
        codes = set(self.by_code) | set(earlier.by_code)
        return CallCounts({c: self.by_code.get(c, 0) - earlier.by_code.get(c, 0) for c in codes})

    def plus(self, other: CallCounts) -> CallCounts:
        codes = set(self.by_code) | set(other.by_code)
        return CallCounts({c: self.by_code.get(c, 0) + other.by_code.get(c, 0) for c in codes})


class Gateway(Protocol):
    """What the rollout controller reads from a gateway: one Envoy or a fleet."""

    def calls(self, clusters: list[str]) -> dict[str, CallCounts]: ...

    def upstream_requests(self, cluster: str) -> tuple[int, int]: ...

    def host_health(self, cluster: str) -> dict[str, bool]: ...

    def route_version(self) -> str: ...


class EnvoyAdmin:
    def __init__(self, url: str, timeout: float = 5.0) -> None:
        parts = urlsplit(url)
        if parts.hostname is None or parts.port is None:
            raise AdminError(f"admin url needs a host and port: {url!r}")
        self.host, self.port, self.timeout = parts.hostname, parts.port, timeout

    def get(self, path: str) -> str:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            body = response.read().decode("utf-8", errors="replace")
        except OSError as error:
            raise AdminError(f"envoy admin {self.host}:{self.port}{path}: {error}") from error
        finally:
            connection.close()
        if response.status != 200:
            raise AdminError(f"envoy admin {path} answered {response.status}: {body[:200]}")
        return body

    def stats(self, pattern: str) -> dict[str, int]:
        """Counters and gauges whose name matches the regular expression ``pattern``."""
        document = json.loads(self.get(f"/stats?format=json&filter={quote(pattern)}"))
        return {
            s["name"]: int(s["value"])
            for s in document.get("stats", [])
            if isinstance(s.get("value"), int)
        }

    def calls(self, clusters: list[str]) -> dict[str, CallCounts]:
        names = "|".join(re.escape(c) for c in clusters)
        by_cluster: dict[str, dict[int, int]] = {c: {} for c in clusters}
        for name, value in self.stats(rf"^cluster\.({names})\.grpc\..*\.[0-9]+$").items():
            match = _CODE_STAT.match(name)
            if match is None or match["cluster"] not in by_cluster:
                continue
            codes = by_cluster[match["cluster"]]
            code = int(match["code"])
            codes[code] = codes.get(code, 0) + value
        return {c: CallCounts(codes) for c, codes in by_cluster.items()}

    def upstream_requests(self, cluster: str) -> tuple[int, int]:
        """(active, total) upstream requests of ``cluster``."""
        stats = self.stats(rf"^cluster\.{re.escape(cluster)}\.upstream_rq_(active|total)$")
        return (
            stats.get(f"cluster.{cluster}.upstream_rq_active", 0),
            stats.get(f"cluster.{cluster}.upstream_rq_total", 0),
        )

    def host_health(self, cluster: str) -> dict[str, bool]:
        """``{"host:port": healthy}`` for every host of ``cluster`` (empty if unknown)."""
        document: dict[str, Any] = json.loads(self.get("/clusters?format=json"))
        for status in document.get("cluster_statuses", []):
            if status["name"] != cluster:
                continue
            hosts = {}
            for host in status.get("host_statuses", []):
                address = host["address"]["socket_address"]
                health = host.get("health_status", {})
                # Healthy: the active check passed and nothing else (outlier ejection,
                # failed check, pending removal) flags it.
                flags = {k for k, v in health.items() if k != "eds_health_status" and v}
                hosts[f"{address['address']}:{address['port_value']}"] = (
                    health.get("eds_health_status") == "HEALTHY" and not flags
                )
            return hosts
        return {}

    def route_version(self, route_config: str = "grpc_routes") -> str:
        """The version_info of the route configuration Envoy serves now."""
        pattern = rf"\.rds\.{route_config}\.version_text$"
        stats = self.get("/stats?filter=" + quote(pattern))
        for line in stats.splitlines():
            name, _, value = line.partition(": ")
            if name.endswith(f".rds.{route_config}.version_text"):
                return value.strip().strip('"')
        return ""

    def cluster_version(self) -> str:
        stats = self.get("/stats?filter=" + quote(r"^cluster_manager\.cds\.version_text$"))
        for line in stats.splitlines():
            name, _, value = line.partition(": ")
            if name == "cluster_manager.cds.version_text":
                return value.strip().strip('"')
        return ""


class EnvoyFleet:
    """The replicas of one gateway, read as one: every call passes through one of them."""

    def __init__(self, admins: Sequence[Gateway]) -> None:
        if not admins:
            raise AdminError("a gateway needs at least one Envoy")
        self.admins = list(admins)

    def calls(self, clusters: list[str]) -> dict[str, CallCounts]:
        total = {c: CallCounts({}) for c in clusters}
        for admin in self.admins:
            for cluster, counts in admin.calls(clusters).items():
                total[cluster] = total[cluster].plus(counts)
        return total

    def upstream_requests(self, cluster: str) -> tuple[int, int]:
        active = total = 0
        for admin in self.admins:
            one_active, one_total = admin.upstream_requests(cluster)
            active, total = active + one_active, total + one_total
        return active, total

    def host_health(self, cluster: str) -> dict[str, bool]:
        """A host is healthy when every Envoy sees it so: one that has not resolved it
        yet (DNS) or still fails its checks would send it no call, or a failing one."""
        views = [admin.host_health(cluster) for admin in self.admins]
        hosts = set().union(*views)
        return {host: all(view.get(host, False) for view in views) for host in hosts}

    def route_version(self) -> str:
        """The route version every Envoy serves; empty while they differ."""
        versions = {admin.route_version() for admin in self.admins}
        return versions.pop() if len(versions) == 1 else ""
