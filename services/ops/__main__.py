"""``python -m services.ops``: operator checks and backups.

check --daily|--weekly [--json]      health, versions, resources, alerts / trends, logs,
                                     vulnerabilities, backups; exit 0 OK, 1 WARN, 2 FAIL
backup stanza-create|run|info|check|verify|restore   pgBackRest for one stanza
backup config --output DIR           configuration and secrets, dated and encrypted
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from services.ops import checks, configbackup
from services.ops.backup import (
    BACKUP_TYPES,
    RETENTION_DAYS,
    BackupError,
    PgBackRest,
    archive_settings,
    render_config,
)
from services.ops.configbackup import ConfigBackupError


def _pair(text: str) -> tuple[str, str]:
    name, sep, address = text.partition("=")
    if not sep or not address:
        raise argparse.ArgumentTypeError(f"expected NAME=HOST:PORT, got {text!r}")
    return name, address


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m services.ops",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    check = commands.add_parser("check", help="daily or weekly operator check")
    when = check.add_mutually_exclusive_group(required=True)
    when.add_argument("--daily", action="store_true")
    when.add_argument("--weekly", action="store_true")
    check.add_argument("--json", action="store_true", help="JSON instead of text")
    check.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    check.add_argument(
        "--service",
        type=_pair,
        action="append",
        default=[],
        metavar="NAME=HOST:PORT",
        help="gRPC address of a service (repeat)",
    )
    check.add_argument(
        "--metrics",
        type=_pair,
        action="append",
        default=[],
        metavar="NAME=HOST:PORT",
        help="metrics address of a service (repeat)",
    )
    check.add_argument("--gateway", default="127.0.0.1:8080", help="'' to skip")
    check.add_argument("--admin", default="127.0.0.1:9901", help="Envoy admin; '' to skip")
    check.add_argument("--data-dir", type=Path, default=Path("var"))
    check.add_argument("--log-dir", type=Path, default=None, help="default DATA_DIR/logs")
    check.add_argument(
        "--backup-state",
        type=Path,
        default=None,
        help="ops backup state directory (default DATA_DIR/backup-state)",
    )
    check.add_argument(
        "--requirements",
        type=Path,
        default=checks.Targets.requirements,
        help="pinned requirements the weekly vulnerability scan audits",
    )
    check.add_argument("--prometheus", default=os.environ.get("PROMETHEUS_URL"))
    check.add_argument("--alertmanager", default=os.environ.get("ALERTMANAGER_URL"))

    backup = commands.add_parser("backup", help="pgBackRest backups and config backups")
    backup.add_argument(
        "--config",
        type=Path,
        default=Path(os.environ.get("PGBACKREST_CONFIG", "/etc/pgbackrest/pgbackrest.conf")),
    )
    backup.add_argument("--stanza", default=os.environ.get("PGBACKREST_STANZA", "main"))
    backup.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get("OPS_BACKUP_STATE", "var/backup-state")),
    )
    backup.add_argument(
        "--os-user",
        default=os.environ.get("PGBACKREST_OS_USER", "postgres"),
        help="user to run pgBackRest and PostgreSQL as when root",
    )
    actions = backup.add_subparsers(dest="action", required=True)
    actions.add_parser("stanza-create", help="create the stanza (once)")
    actions.add_parser("check", help="switch WAL and confirm it is archived")
    run = actions.add_parser("run", help="take a backup; expires those past retention")
    run.add_argument("--type", choices=BACKUP_TYPES, default="incr")
    actions.add_parser("info", help="backups in the repository (JSON)")
    verify = actions.add_parser("verify", help="restore into a scratch cluster and check it")
    verify.add_argument("--scratch-dir", type=Path, default=None)
    restore = actions.add_parser("restore", help="restore the latest backup into a directory")
    restore.add_argument("--target", type=Path, required=True)
    restore.add_argument(
        "--archive-mode",
        choices=("preserve", "off"),
        default="preserve",
        help="off for a copy that must not archive into this repository",
    )
    render = actions.add_parser(
        "render-config", help="print a pgbackrest.conf and the PostgreSQL archive settings"
    )
    render.add_argument("--pg-path", required=True, help="PostgreSQL data directory")
    render.add_argument("--pg-port", type=int, default=5432)
    render.add_argument("--pg-socket-path", default="/var/run/postgresql")
    render.add_argument("--repo-path", default="/var/lib/pgbackrest")
    render.add_argument("--log-path", default="/var/log/pgbackrest")
    render.add_argument("--lock-path", default="/tmp/pgbackrest")  # noqa: S108 (its default)
    render.add_argument("--spool-path", default="/var/spool/pgbackrest")
    config = actions.add_parser("config", help="back up configuration and secret files")
    config.add_argument("--output", type=Path, required=True)
    config.add_argument(
        "--path",
        type=Path,
        action="append",
        default=None,
        help="file or directory to include (repeat; default config/)",
    )
    config.add_argument("--passphrase-file", type=Path, default=None)
    config.add_argument("--keep-days", type=float, default=RETENTION_DAYS)
    return parser


def _check(options: argparse.Namespace) -> int:
    targets = checks.Targets(
        data_dir=options.data_dir,
        log_dir=options.log_dir or options.data_dir / "logs",
        backup_state=options.backup_state or options.data_dir / "backup-state",
        gateway=options.gateway or None,
        admin=options.admin or None,
        prometheus=options.prometheus,
        alertmanager=options.alertmanager,
        requirements=options.requirements,
    )
    if options.service:
        targets.services = dict(options.service)
        targets.metrics = {}
    targets.metrics.update(dict(options.metrics))
    report = checks.daily(targets) if options.daily else checks.weekly(targets)
    if options.json:
        print(report.to_json())
    else:
        color = options.color == "always" or (options.color == "auto" and sys.stdout.isatty())
        print(report.to_text(color))
    return report.exit_code()


def _backup(options: argparse.Namespace) -> int:
    if options.action == "config":
        paths = options.path or [Path("config")]
        written = configbackup.backup_config(
            paths, options.output, passphrase_file=options.passphrase_file
        )
        removed = configbackup.prune(options.output, options.keep_days)
        print(json.dumps({"written": str(written), "pruned": [str(p) for p in removed]}))
        return 0
    if options.action == "render-config":
        print(
            render_config(
                stanza=options.stanza,
                pg_path=options.pg_path,
                pg_port=options.pg_port,
                pg_socket_path=options.pg_socket_path,
                repo_path=options.repo_path,
                log_path=options.log_path,
                lock_path=options.lock_path,
                spool_path=options.spool_path,
            )
        )
        print("# PostgreSQL (then restart it), e.g. in psql as a superuser:")
        for key, value in archive_settings(options.config, options.stanza).items():
            quoted = value.replace("'", "''")
            print(f"#   ALTER SYSTEM SET {key} = '{quoted}';")
        return 0
    backrest = PgBackRest(
        options.config,
        stanza=options.stanza,
        state_dir=options.state_dir,
        os_user=options.os_user,
        pushgateway=os.environ.get("PUSHGATEWAY_URL") or None,
    )
    if options.action == "stanza-create":
        backrest.stanza_create()
    elif options.action == "check":
        backrest.check()
    elif options.action == "run":
        latest = backrest.backup(options.type)
        print(json.dumps({"label": latest["label"], "type": latest["type"]}))
    elif options.action == "info":
        print(json.dumps(backrest.info(), indent=2))
    elif options.action == "verify":
        result = backrest.verify(options.scratch_dir)
        print(
            json.dumps(
                {
                    "backup": result.backup_label,
                    "seconds": round(result.seconds, 1),
                    "tables": result.tables,
                },
                indent=2,
            )
        )
    elif options.action == "restore":
        backrest.restore(options.target, archive_mode_off=options.archive_mode == "off")
    return 0


def main(argv: list[str] | None = None) -> int:
    options = _parser().parse_args(argv)
    try:
        return _check(options) if options.command == "check" else _backup(options)
    except (BackupError, ConfigBackupError, OSError) as error:
        print(f"ops: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
