"""pgBackRest for real: a throwaway cluster, writes through the maintenance service,
full + incremental backups, more writes, restore into a fresh cluster, every row back."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from google.protobuf import timestamp_pb2
from manufacturing.maintenance.v1 import (
    maintenance_service_pb2 as pb,
)
from manufacturing.maintenance.v1 import (
    maintenance_service_pb2_grpc,
    sensor_reading_pb2,
)

from services.ops.backup import PgBackRest, archive_settings, render_config
from services.ops.pgcluster import ScratchCluster, free_port, hand_over
from tests.harness import channel_to, serve, settings_for
from tests.ops.tools import require_postgres_bin, require_tool

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2026, 3, 1, tzinfo=UTC)
ROWS_QUERY = (
    "SELECT machine_id, sensor, time, value FROM maintenance.sensor_readings "
    "ORDER BY machine_id, sensor, time"
)


def readings(machine: str, count: int) -> list[sensor_reading_pb2.SensorReading]:
    out = []
    for minute in range(count):
        at = timestamp_pb2.Timestamp()
        at.FromDatetime(START + timedelta(minutes=minute))
        out.append(
            sensor_reading_pb2.SensorReading(
                machine_id=machine, sensor="spindle_temp", time=at, value=60 + minute / 10
            )
        )
    return out


@pytest.fixture
def workspace() -> Iterator[Path]:
    # Not tmp_path: PostgreSQL runs as the postgres user, which cannot enter root's 0700
    # pytest directory.
    root = Path(tempfile.mkdtemp(prefix="ops-backup-"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def source(workspace: Path) -> Iterator[tuple[ScratchCluster, PgBackRest]]:
    require_postgres_bin()
    require_tool("pgbackrest", "Debian package pgbackrest")
    cluster = ScratchCluster(workspace / "source" / "data", free_port())
    config = workspace / "pgbackrest.conf"
    for sub in ("repo", "log", "lock", "spool", "state"):
        (workspace / sub).mkdir()
    hand_over(workspace, cluster.os_user)
    config.write_text(
        render_config(
            stanza="main",
            pg_path=cluster.data_dir,
            pg_port=cluster.port,
            pg_socket_path=cluster.socket_dir,
            repo_path=workspace / "repo",
            log_path=workspace / "log",
            lock_path=workspace / "lock",
            spool_path=workspace / "spool",
        )
    )
    cluster.init()
    cluster.configure(archive_settings(config, "main"))
    hand_over(workspace, cluster.os_user)
    cluster.start()
    try:
        yield cluster, PgBackRest(config, stanza="main", state_dir=workspace / "state")
    finally:
        cluster.stop(mode="immediate")


def test_full_and_incremental_backup_restore_every_committed_row(source, tmp_path):
    started = time.monotonic()
    cluster, backrest = source
    backrest.stanza_create()
    settings = settings_for("maintenance", tmp_path, DATABASE_URL=cluster.url)
    with serve(settings) as service, channel_to(service.port) as channel:
        stub = maintenance_service_pb2_grpc.MaintenanceServiceStub(channel)

        def ingest(machine: str, count: int) -> None:
            reply = stub.IngestReadings(
                iter([pb.IngestReadingsRequest(readings=readings(machine, count))]), timeout=30
            )
            assert reply.stored_count == count

        ingest("press-1", 120)
        full = backrest.backup("full")
        ingest("press-2", 80)
        # The incremental through the command, as the CronJob and an operator run it.
        done = subprocess.run(
            [sys.executable, "-m", "services.ops", "backup", f"--config={backrest.config}",
             f"--state-dir={backrest.state_dir}", "run", "--type=incr"],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        incremental = backrest.latest_backup()
        assert json.loads(done.stdout) == {"label": incremental["label"], "type": "incr"}
        ingest("press-3", 40)  # after the last backup: only in the archived WAL
    backrest.check()  # switch WAL and wait until the last segment is archived

    assert full["type"] == "full"
    assert incremental["type"] == "incr"
    assert full["label"] in str(incremental["reference"])
    expected = cluster.sql(ROWS_QUERY).stdout.splitlines()
    assert len(expected) == 240

    restored_rows: list[str] = []
    result = backrest.verify(
        inspect=lambda restored: restored_rows.extend(restored.sql(ROWS_QUERY).stdout.splitlines())
    )
    assert restored_rows == expected
    assert result.tables["maintenance.sensor_readings"] == 240
    assert result.backup_label == incremental["label"]

    state = backrest.state()
    assert set(state.last_backup) == {"full", "incr"}
    assert state.last_verified_restore is not None
    assert state.last_verified_restore > state.last_backup["incr"]
    prom = (backrest.state_dir / "ops_backup.prom").read_text()
    assert 'ops_backup_last_success_timestamp_seconds{stanza="main",type="incr"}' in prom
    assert 'ops_backup_last_verified_restore_timestamp_seconds{stanza="main"}' in prom
    assert time.monotonic() - started < 90
