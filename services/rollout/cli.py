"""``rollout``: move a service to a new version through the gateway, or show where it is.

    rollout SERVICE --version V --strategy blue-green|canary [--steps 10,50,100]
            [--max-error-rate 0.001] [--step-seconds 30] [--source DIR | --image IMAGE]
    rollout status [--json]
    rollout history [--limit 20]

``--platform local`` (the default) acts on the topology that ``make up`` (``python -m
services.devstack``) wrote under its data directory; ``--platform kubernetes
--namespace NS`` on the suite deploy.sh installed there, through kubectl (``$KUBECTL``
or on PATH). ``ROLLOUT_PLATFORM`` and ``ROLLOUT_NAMESPACE`` are the defaults of both
options. The history is kept under ``--data-dir`` (default ``var``) either way.

Where the services require credentials, ``ROLLOUT_CALL_HEADER='x-api-key: KEY'`` (or
``'authorization: Bearer TOKEN'``) goes with the smoke and parity calls; an environment
variable, so the secret stays off command lines. Where they demand a client certificate
(mutual TLS), ``ROLLOUT_TLS_CA_FILE``, ``ROLLOUT_TLS_CERT_FILE`` and
``ROLLOUT_TLS_KEY_FILE`` name the CA of their certificates and the client certificate and
key every check connects with.

Exit code 0: completed; 1: rolled back (the reason is printed and kept in the
history); 2: could not start.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.rollout.checks import TLS_VARIABLES, ClientTls
from services.rollout.contract import SERVICES
from services.rollout.controller import (
    STRATEGIES,
    RolloutController,
    RolloutError,
    RolloutOptions,
    status,
)
from services.rollout.envoy_admin import AdminError
from services.rollout.kubectl import KubectlError
from services.rollout.kubernetes import KubernetesPlatform
from services.rollout.local import LocalPlatform
from services.rollout.platform import PLATFORMS, Platform
from services.rollout.processes import LaunchError
from services.rollout.state import StateError, TopologyStore

# Could not start: the rollout or status had nothing to act on.
_SETUP_ERRORS = (RolloutError, StateError, LaunchError, AdminError, KubectlError)


def _steps(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"steps are percentages like 10,50,100: {text!r}"
        ) from None


def _call_metadata(header: str) -> tuple[tuple[str, str], ...]:
    """``'Name: value'`` -> gRPC metadata (names are lower case on the wire)."""
    if not header:
        return ()
    name, separator, value = header.partition(":")
    if not separator or not name.strip() or not value.strip():
        raise RolloutError("ROLLOUT_CALL_HEADER must look like 'x-api-key: KEY'")
    return ((name.strip().lower(), value.strip()),)


def client_tls(environ: Mapping[str, str]) -> ClientTls | None:
    """The checks' client certificate from ``ROLLOUT_TLS_*``: all three, or none."""
    files = [environ.get(name, "") for name in TLS_VARIABLES]
    if not any(files):
        return None
    for name, file in zip(TLS_VARIABLES, files, strict=True):
        if not file or not Path(file).is_file():
            raise RolloutError(f"{name}: no readable file {file!r} (mutual TLS needs all three)")
    return ClientTls(*files)


def _platform(options: argparse.Namespace) -> Platform:
    if options.platform == "kubernetes":
        return KubernetesPlatform(options.namespace)
    if options.platform == "local":
        return LocalPlatform(options.data_dir)
    raise RolloutError(f"--platform (or ROLLOUT_PLATFORM) must be one of {', '.join(PLATFORMS)}")


def _print_status(report: dict[str, Any]) -> None:
    kubernetes = report["platform"] == "kubernetes"
    if kubernetes:
        print(f"kubernetes namespace: {report['namespace']}")
    else:
        print(f"gateway: localhost:{report['gateway_port']}")
    running = "pods ready" if kubernetes else "processes"
    header = ("service", "color", "version", "weight", "live", "health", running)
    print("{:<13}{:<7}{:<14}{:>7}  {:<5}{:<10}{}".format(*header))
    for name, colors in report["services"].items():
        for color, c in colors.items():
            health = f"{c['healthy_hosts']}/{c['hosts']}" if c["hosts"] else "-"
            version = c["version"] if c["processes"] else f"({c['version'] or '-'})"
            live = "yes" if c["live"] else ""
            if kubernetes:
                where = f"{len(c['processes'])}/{c['replicas']}"
            else:
                where = ",".join(map(str, c["processes"])) or "stopped"
            print(
                f"{name:<13}{color:<7}{version:<14}{c['weight']:>6}%  {live:<5}{health:<10}{where}"
            )
    if error := report.get("envoy_error"):
        print(f"envoy admin: {error}")
    if report["last_rollouts"]:
        print("last rollouts:")
        for r in report["last_rollouts"]:
            reason = f" ({r['reason']})" if r.get("reason") else ""
            to = r.get("to") or {}
            print(
                f"  {r['finished_at']} {r['service']} -> {to.get('version')} "
                f"{r['strategy']}: {r['outcome']}{reason}"
            )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", type=Path, default=Path("var"))
    common.add_argument(
        "--platform",
        choices=PLATFORMS,
        default=os.environ.get("ROLLOUT_PLATFORM") or "local",
        help="where the suite runs (default $ROLLOUT_PLATFORM or local)",
    )
    common.add_argument(
        "--namespace",
        default=os.environ.get("ROLLOUT_NAMESPACE", ""),
        help="Kubernetes namespace of the suite (default $ROLLOUT_NAMESPACE)",
    )
    if argv and argv[0] in ("status", "history"):
        parser = argparse.ArgumentParser(prog=f"rollout {argv[0]}", parents=[common])
        parser.add_argument("--json", action="store_true")
        parser.add_argument("--limit", type=int, default=20)
        options = parser.parse_args(argv[1:])
        try:
            if argv[0] == "status":
                report = status(_platform(options), options.data_dir)
                if options.json:
                    print(json.dumps(report, indent=2))
                else:
                    _print_status(report)
            else:
                for record in TopologyStore(options.data_dir).history()[-options.limit :]:
                    print(json.dumps(record) if options.json else _history_line(record))
        except _SETUP_ERRORS as error:
            print(f"rollout: {error}", file=sys.stderr)
            return 2
        return 0

    parser = argparse.ArgumentParser(
        prog="rollout",
        parents=[common],
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("service", choices=SERVICES)
    parser.add_argument("--version", required=True, help="the version to roll out")
    parser.add_argument("--strategy", choices=STRATEGIES, required=True)
    parser.add_argument("--steps", type=_steps, default=(), help="canary weights, e.g. 10,50,100")
    parser.add_argument("--max-error-rate", type=float, default=0.001)
    parser.add_argument("--step-seconds", type=float, default=30.0, help="observation per step")
    parser.add_argument(
        "--min-step-calls", type=int, default=0, help="calls the new color must answer per step"
    )
    parser.add_argument("--startup-timeout", type=float, default=90.0)
    parser.add_argument("--ready-timeout", type=float, default=60.0, help="after startup")
    parser.add_argument("--drain-quiet-seconds", type=float, default=2.0)
    origin = parser.add_mutually_exclusive_group()
    origin.add_argument("--source", type=Path, default=None, help="release tree (local)")
    origin.add_argument(
        "--image",
        default=None,
        help="image of the version (kubernetes; default: the live color's, tagged VERSION)",
    )
    parser.add_argument("--json", action="store_true", help="print the history record as JSON")
    options = parser.parse_args(argv)
    try:
        platform = _platform(options)
        call_metadata = _call_metadata(os.environ.get("ROLLOUT_CALL_HEADER", ""))
        tls = client_tls(os.environ)
    except _SETUP_ERRORS as error:
        print(f"rollout: {error}", file=sys.stderr)
        return 2
    if (options.image if platform.name == "local" else options.source) is not None:
        flag = "--image" if platform.name == "local" else "--source"
        parser.error(f"{flag} is not for the {platform.name} platform")
    rollout_options = RolloutOptions(
        strategy=options.strategy,
        steps=options.steps,
        max_error_rate=options.max_error_rate,
        step_s=options.step_seconds,
        min_step_calls=options.min_step_calls,
        startup_timeout_s=options.startup_timeout,
        ready_timeout_s=options.ready_timeout,
        drain_quiet_s=options.drain_quiet_seconds,
        route_timeout_s=platform.route_timeout_s,
        poll_s=platform.poll_s,
        call_metadata=call_metadata,
        client_tls=tls,
    )
    controller = RolloutController(
        options.data_dir, echo=lambda line: print(line, flush=True), platform=platform
    )
    try:
        record = controller.run(
            options.service, options.version, rollout_options, options.source or options.image
        )
    except _SETUP_ERRORS as error:
        print(f"rollout: {error}", file=sys.stderr)
        return 2
    if options.json:
        print(json.dumps(record))
    if record["outcome"] != "completed":
        print(f"rolled back: {record['reason']}", file=sys.stderr)
        return 1
    return 0


def _history_line(record: dict[str, Any]) -> str:
    finished = record.get("finished_at") or datetime.now(UTC).isoformat()
    reason = f" ({record['reason']})" if record.get("reason") else ""
    return (
        f"{finished} {record['service']} {record['from']['version']} -> "
        f"{record['to']['version']} {record['strategy']} {record['steps']}: "
        f"{record['outcome']}{reason} in {record.get('duration_s')} s"
    )


if __name__ == "__main__":
    sys.exit(main())
