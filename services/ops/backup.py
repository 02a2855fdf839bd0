"""pgBackRest backups: full daily, incremental every 6 hours, 30 days kept, verified.

pgBackRest does the work (WAL archiving, full/incremental backups, retention, restore);
this module renders its configuration, runs it, and keeps what pgBackRest does not: when
a restore was last *proven* to work. ``verify`` restores the latest backup into a
scratch cluster on a free port, lets it replay the archived WAL, opens it and counts
the rows of every table of the services' schemas. Timestamps of the last backup and the
last verified restore go to ``state.json`` and to a Prometheus textfile
(``ops_backup.prom``) that node_exporter's textfile collector exports for the alerts.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from services.ops.pgcluster import (
    ClusterError,
    ScratchCluster,
    free_port,
    hand_over,
    postgres_bin_dir,
    run,
)

logger = logging.getLogger(__name__)

__all__ = ["BackupError", "PgBackRest", "postgres_bin_dir", "render_config"]

RETENTION_DAYS = 30
BACKUP_TYPES = ("full", "diff", "incr")
RETRIED_ON_CRASH = frozenset({"backup", "check", "info", "stanza-create", "expire"})
# Exact row counts of every user table in one statement (identifiers quoted by format).
COUNT_ROWS = """
SELECT schemaname || '.' || tablename,
       (xpath('/row/c/text()', query_to_xml(
            format('SELECT count(*) AS c FROM %I.%I', schemaname, tablename),
            false, true, '')))[1]::text
FROM pg_tables
WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
ORDER BY 1
"""


class BackupError(RuntimeError):
    """pgBackRest or the scratch restore failed; the message says which step."""


def render_config(
    *,
    stanza: str,
    pg_path: Path | str,
    pg_port: int,
    pg_socket_path: Path | str,
    repo_path: Path | str,
    log_path: Path | str,
    lock_path: Path | str,
    spool_path: Path | str,
    retention_days: int = RETENTION_DAYS,
    process_max: int = 2,
) -> str:
    """A pgbackrest.conf for one local PostgreSQL and one repository.

    Retention is by time: full backups (and the incrementals and WAL that depend on
    them) older than ``retention_days`` are expired after each backup.
    """
    return (
        "[global]\n"
        f"repo1-path={repo_path}\n"
        "repo1-retention-full-type=time\n"
        f"repo1-retention-full={retention_days}\n"
        "repo1-bundle=y\n"
        "compress-type=zst\n"
        f"process-max={process_max}\n"
        "start-fast=y\n"
        "archive-async=n\n"
        f"log-path={log_path}\n"
        f"lock-path={lock_path}\n"
        f"spool-path={spool_path}\n"
        "log-level-console=warn\n"
        "log-level-file=info\n"
        "\n"
        f"[{stanza}]\n"
        f"pg1-path={pg_path}\n"
        f"pg1-port={pg_port}\n"
        f"pg1-socket-path={pg_socket_path}\n"
        "pg1-user=postgres\n"
    )


def archive_settings(config: Path, stanza: str) -> dict[str, str]:
    """postgresql.conf settings that ship every WAL segment to the repository."""
    return {
        "wal_level": "replica",
        "archive_mode": "on",
        "archive_command": f"pgbackrest --config={config} --stanza={stanza} archive-push %p",
        "max_wal_senders": "3",
        # A quiet database still ships its last writes within a minute.
        "archive_timeout": "60",
    }


@dataclass
class BackupState:
    """What pgBackRest does not remember: the last verified restore (and last backups)."""

    last_backup: dict[str, float] = field(default_factory=dict)  # type -> unix time
    last_verified_restore: float | None = None
    last_verified_backup: str = ""
    last_verified_tables: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> BackupState:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls()
        return cls(**{k: v for k, v in raw.items() if k in cls.__dataclass_fields__})

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")
        temporary.replace(path)


@dataclass(frozen=True)
class VerifyResult:
    backup_label: str
    tables: dict[str, int]
    seconds: float


def metrics_text(stanza: str, state: BackupState) -> str:
    lines = [
        "# HELP ops_backup_last_success_timestamp_seconds End of the last successful backup.",
        "# TYPE ops_backup_last_success_timestamp_seconds gauge",
        *(
            f'ops_backup_last_success_timestamp_seconds{{stanza="{stanza}",type="{kind}"}} {at}'
            for kind, at in sorted(state.last_backup.items())
        ),
        "# HELP ops_backup_last_verified_restore_timestamp_seconds Last restore proven to work.",
        "# TYPE ops_backup_last_verified_restore_timestamp_seconds gauge",
    ]
    if state.last_verified_restore is not None:
        lines.append(
            f'ops_backup_last_verified_restore_timestamp_seconds{{stanza="{stanza}"}} '
            f"{state.last_verified_restore}"
        )
    return "\n".join(lines) + "\n"


def push_metrics(pushgateway: str, stanza: str, text: str) -> None:
    """PUT the backup timestamps to a Prometheus Pushgateway (group job/stanza)."""
    if not pushgateway.startswith(("http://", "https://")):
        raise BackupError(f"pushgateway must be an http(s) URL, got {pushgateway!r}")
    url = f"{pushgateway.rstrip('/')}/metrics/job/ops_backup/stanza/{stanza}"
    request = urllib.request.Request(url, data=text.encode(), method="PUT")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310 (scheme checked)
            pass
    except OSError as error:
        raise BackupError(f"pushing backup metrics to {url} failed: {error}") from error


class PgBackRest:
    """pgBackRest for one stanza, run as ``os_user`` when this process is root."""

    def __init__(
        self,
        config: Path,
        *,
        stanza: str = "main",
        state_dir: Path,
        os_user: str | None = "postgres",
        binary: str = "pgbackrest",
        pushgateway: str | None = None,
    ) -> None:
        self.config = config
        self.stanza = stanza
        self.state_dir = state_dir
        self.os_user = os_user
        self.binary = shutil.which(binary) or binary
        # Kubernetes: Jobs push their timestamps, as node_exporter cannot read their volume.
        self.pushgateway = pushgateway

    @property
    def state_path(self) -> Path:
        return self.state_dir / "state.json"

    def state(self) -> BackupState:
        return BackupState.load(self.state_path)

    def _save(self, state: BackupState) -> None:
        state.save(self.state_path)
        metrics = self.state_dir / "ops_backup.prom"
        temporary = metrics.with_suffix(".tmp")
        text = metrics_text(self.stanza, state)
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(metrics)
        if self.pushgateway:
            push_metrics(self.pushgateway, self.stanza, text)

    def run(self, command: str, *options: str, timeout: float = 3600) -> str:
        args = [self.binary, f"--config={self.config}", f"--stanza={self.stanza}", *options]
        for attempt in (1, 2):
            done = run([*args, command], os_user=self.os_user, timeout=timeout, check=False)
            # pgBackRest 2.45 (Debian 12) occasionally dies by SIGSEGV on an error path
            # under heavy load; a backup resumes where the crashed one stopped, so one
            # more attempt is safe. Any other failure is reported at once.
            if done.returncode < 0 and attempt == 1 and command in RETRIED_ON_CRASH:
                logger.warning(
                    "pgbackrest crashed; retrying once",
                    extra={"command": command, "signal": -done.returncode},
                )
                time.sleep(1)
                continue
            break
        if done.returncode != 0:
            output = (done.stdout + done.stderr)[-3000:]
            raise BackupError(f"pgbackrest {command} exited {done.returncode}:\n{output}")
        return done.stdout

    def stanza_create(self) -> None:
        self.run("stanza-create")

    def check(self) -> None:
        """Switch WAL and wait until it is archived: proves archiving works end to end."""
        self.run("check")

    def backup(self, kind: str) -> dict[str, Any]:
        if kind not in BACKUP_TYPES:
            raise BackupError(f"backup type must be one of {', '.join(BACKUP_TYPES)}")
        self.run("backup", f"--type={kind}")
        latest = self.latest_backup()
        state = self.state()
        state.last_backup[kind] = float(latest["timestamp"]["stop"])
        self._save(state)
        return latest

    def info(self) -> list[dict[str, Any]]:
        parsed: list[dict[str, Any]] = json.loads(self.run("info", "--output=json"))
        return parsed

    def backups(self) -> list[dict[str, Any]]:
        stanzas = [s for s in self.info() if s.get("name") == self.stanza]
        return list(stanzas[0].get("backup", [])) if stanzas else []

    def latest_backup(self) -> dict[str, Any]:
        found = self.backups()
        if not found:
            raise BackupError(f"stanza {self.stanza} has no backup yet")
        return found[-1]

    def restore(self, target: Path, *, archive_mode_off: bool = True) -> None:
        """Restore the latest backup plus all archived WAL into the empty ``target``."""
        target.mkdir(parents=True, exist_ok=True, mode=0o700)
        hand_over(target, self.os_user)
        options = [f"--pg1-path={target}"]
        if archive_mode_off:
            # The restored copy must never push its own WAL into the live repository.
            options.append("--archive-mode=off")
        self.run("restore", *options)

    def verify(
        self,
        scratch_root: Path | None = None,
        *,
        timeout: float = 600,
        inspect: Callable[[ScratchCluster], None] | None = None,
    ) -> VerifyResult:
        """Restore into a scratch cluster, open it, count every service table's rows.

        ``inspect`` may run further checks on the open restored cluster (raise to fail).
        """
        started = time.monotonic()
        label = str(self.latest_backup()["label"])
        owned_root = scratch_root is None
        root = scratch_root or Path(tempfile.mkdtemp(prefix="ops-verify-"))
        root.mkdir(parents=True, exist_ok=True)
        hand_over(root, self.os_user)
        cluster = ScratchCluster(root / "data", free_port(), os_user=self.os_user)
        try:
            self.restore(cluster.data_dir)
            cluster.start(timeout=timeout)
            cluster.wait_writable(timeout=timeout)
            tables = table_row_counts(cluster)
            if inspect is not None:
                inspect(cluster)
        except ClusterError as error:
            raise BackupError(f"verify: the restored cluster failed: {error}") from error
        finally:
            cluster.stop(mode="immediate")
            if owned_root:
                shutil.rmtree(root, ignore_errors=True)
        state = self.state()
        state.last_verified_restore = time.time()
        state.last_verified_backup = label
        state.last_verified_tables = tables
        self._save(state)
        return VerifyResult(label, tables, time.monotonic() - started)


def table_row_counts(cluster: ScratchCluster) -> dict[str, int]:
    """``{"schema.table": rows}`` for every user table, counted inside PostgreSQL."""
    lines = cluster.sql(COUNT_ROWS).stdout.splitlines()
    return {name: int(count) for name, count in (line.split("|") for line in lines)}
