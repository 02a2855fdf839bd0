"""What `make up` prints once the suite is ready: where it is and how to call it."""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from services.rollout.checks import TLS_VARIABLES, ClientTls


def grpcurl_command() -> str:
    """grpcurl as the user can paste it: on PATH, else the one in the virtualenv."""
    beside_python = Path(sys.executable).with_name("grpcurl")
    if shutil.which("grpcurl"):
        return "grpcurl"
    return (
        str(beside_python.relative_to(Path.cwd()))
        if beside_python.is_relative_to(Path.cwd())
        else str(beside_python)
    )


@dataclass(frozen=True)
class Access:
    """How callers reach a hardened local gateway: the CA to trust, whether a token is due."""

    ca_file: str = ""
    token: bool = False

    def grpcurl_flags(self) -> str:
        return f"-cacert {shlex.quote(self.ca_file)}" if self.ca_file else "-plaintext"

    def credentials(self) -> str:
        """grpcurl/curl header options; the token is read from $MFG_TOKEN when pasted."""
        return ' -H "authorization: Bearer $MFG_TOKEN"' if self.token else ""


def example_calls(gateway: str, access: Access = Access()) -> list[str]:
    """One call per service, each working on a fresh suite and when repeated."""
    tool = grpcurl_command()
    solve = {
        "problem": {
            "machines": [{"id": "lathe"}, {"id": "mill"}],
            "jobs": [
                {"id": "shaft", "operations": [
                    {"eligibleMachines": [{"machineId": "lathe", "duration": 3}]},
                    {"eligibleMachines": [{"machineId": "mill", "duration": 2}]},
                ]},
                {"id": "flange", "operations": [
                    {"eligibleMachines": [{"machineId": "mill", "duration": 4}]},
                    {"eligibleMachines": [{"machineId": "lathe", "duration": 3}]},
                ]},
            ],
        }
    }  # fmt: skip
    chart = {
        "chartType": "CHART_TYPE_XBAR_R",
        "subgroups": [{"values": [74.03, 74.00, 74.01]}, {"values": [73.99, 74.01, 74.00]},
                      {"values": [74.01, 74.02, 73.99]}],
    }  # fmt: skip
    at = "2026-01-05T08:00:00Z"
    readings = {
        "readings": [
            {"machineId": "press-7", "sensor": "spindle_temp", "time": at, "value": 61.5},
            {"machineId": "press-7", "sensor": "vibration", "time": at, "value": 0.42},
        ]
    }
    calls = [
        (solve, "manufacturing.scheduling.v1.SchedulingService/Solve"),
        (chart, "manufacturing.quality.v1.QualityService/ComputeControlChart"),
        (readings, "manufacturing.maintenance.v1.MaintenanceService/IngestReadings"),
    ]
    flags = access.grpcurl_flags()
    commands = [f"{tool} {flags} {gateway} list"]  # reflection needs no token
    for body, method in calls:
        data = shlex.quote(json.dumps(body, separators=(",", ":")))
        commands.append(f"{tool} {flags}{access.credentials()} -d {data} {gateway} {method}")
    return commands


def rest_example(gateway: str, access: Access = Access()) -> str:
    """The same chart over REST/JSON (Envoy transcodes), for callers without gRPC."""
    chart = {"chartType": "CHART_TYPE_XBAR_R", "subgroups": [{"values": [74.03, 74.0]},
                                                          {"values": [73.99, 74.01]}]}  # fmt: skip
    data = shlex.quote(json.dumps(chart, separators=(",", ":")))
    scheme = f"--cacert {shlex.quote(access.ca_file)} https" if access.ca_file else "http"
    return (
        f"curl -sS --fail-with-body -H 'content-type: application/json'{access.credentials()} "
        f"-d {data} {scheme}://{gateway}/manufacturing.quality.v1.QualityService/ComputeControlChart"
    )


def rollout_command() -> str:
    beside_python = Path(sys.executable).with_name("rollout")
    if shutil.which("rollout"):
        return "rollout"
    if beside_python.exists():
        return (
            str(beside_python.relative_to(Path.cwd()))
            if beside_python.is_relative_to(Path.cwd())
            else str(beside_python)
        )
    return f"{sys.executable} -m services.rollout"


def rollout_tls_environment(tls: ClientTls | None) -> str:
    """``ROLLOUT_TLS_*=...`` before a pasted rollout command, for services on mutual TLS."""
    if tls is None:
        return ""
    files = (tls.ca_file, tls.cert_file, tls.key_file)
    return "".join(f"{n}={shlex.quote(f)} " for n, f in zip(TLS_VARIABLES, files, strict=True))


def banner(
    gateway_port: int,
    log_dir: Path,
    data_dir: Path = Path("var"),
    access: Access = Access(),
    client_tls: ClientTls | None = None,
) -> str:
    gateway = f"localhost:{gateway_port}"
    tool = rollout_command()
    tls = rollout_tls_environment(client_tls)
    data = "" if data_dir == Path("var") else f" --data-dir {data_dir}"
    lines = [
        "",
        f"Manufacturing AI suite is up. Gateway (gRPC, reflection): {gateway}",
        f"Service logs: {log_dir}/<service>-<color>.log   Stop: Ctrl-C",
        "",
        "Try:",
        *(f"  {command}" for command in example_calls(gateway, access)),
        "",
        "REST/JSON (unary methods, POST to the gRPC path):",
        f"  {rest_example(gateway, access)}",
        "",
        "Blue runs each service; green is idle. Roll out a version (a tree whose",
        "services/<name>/VERSION says it), and see where everything is:",
        f"  {tls}{tool} quality --version X.Y.Z --strategy canary --steps 10,50,100"
        f" --source DIR{data}",
        f"  {tool} status{data}",
        "",
    ]
    return "\n".join(lines)
