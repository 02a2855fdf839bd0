"""Maintenance service figures, all measured in one run.

    .venv/bin/python -m bench.maintenance [--retrain] [--folds 5] [--rows 100000]
    .venv/bin/python -m bench.maintenance --cmapss DIR
    .venv/bin/python -m bench.maintenance --only ingest [--rows 100000]

1. Remaining useful life: FD001 on its official test set (last cycle of each unit; RMSE
   and PHM08 score against the truth capped at 125 and as given), with the shipped
   ``rul-fd001`` artifact (after checking its training-data fingerprint matches
   ../shared/data) or, with ``--retrain``, a model trained in this run (parameters and
   interval chosen by cross-validation on the training units only; the test set is only
   scored here), and how often the model's 90 % interval holds the capped truth;
   FD002-FD004 by unit-grouped K-fold cross-validation on their training sets with the
   shipped models' parameters, one seed as when they were chosen (RMSE over every cycle
   of each held-out unit against the capped target, i.e. truncation uniform over life;
   not comparable with last-cycle test RMSE, where fewer easy early cycles count).
2. Ingestion: readings streamed over gRPC (batches of 5000) into PostgreSQL through a real
   in-process service, against a bulk COPY (psycopg 3) of the same rows into the same
   table in the same run; ratio = gRPC rows/s / COPY rows/s.
3. Alert latency: from sending a reading that breaks a threshold rule to a WatchAlerts
   subscriber receiving the alert (Redis Streams when Redis answers, else in-process).

With ``--cmapss DIR`` it instead scores every ``test_FD00N.txt``/``RUL_FD00N.txt`` pair in
DIR with the shipped ``rul-fd00N`` models (trained on ../shared/data/cmapss).
``--only ingest`` (or ``alerts``, ``rul``) measures one part and prints only its figures.
The last line is ``maintenance: key=value ...``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import queue
import re
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import numpy as np
import psycopg
import redis
import sklearn.ensemble  # noqa: F401  (loads the OpenMP runtime, so threadpool_limits caps it)
from google.protobuf import timestamp_pb2
from manufacturing.maintenance.v1 import alert_pb2, maintenance_service_pb2_grpc, sensor_reading_pb2
from manufacturing.maintenance.v1 import maintenance_service_pb2 as pb
from psycopg import sql
from sqlalchemy.engine import make_url
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from services.maintenance import artifacts
from services.maintenance.domain import cmapss, rul, rul_selection
from tests.harness import channel_to, serve, settings_for

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/15"
BATCH = 5000


def rul_figures(data: Path, retrain: bool, folds: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    with threadpool_limits(1):
        if retrain or not _shipped_matches(data / "train_FD001.txt", "rul-fd001"):
            print("training rul-fd001 in this run ...", flush=True)
            units = cmapss.load_units(data / "train_FD001.txt")
            model = rul_selection.train_rul(units, 1, folds=folds).model
        else:
            model = _shipped("rul-fd001")
        test = score_test_set(model, data / "test_FD001.txt", data / "RUL_FD001.txt")
        print(
            f"FD001 test (100 units, last cycle): RMSE {test['test_rmse_capped']:.2f} / "
            f"score {test['test_score_capped']:.0f} against truth capped at 125; RMSE "
            f"{test['test_rmse']:.2f} / score {test['test_score']:.0f} against truth as given; "
            f"{model.interval.coverage:.0%} interval covers "
            f"{test['test_interval_coverage_capped']:.0%} of capped truth",
            flush=True,
        )
        figures |= {
            "fd001_rmse": test["test_rmse_capped"],
            "fd001_score": test["test_score_capped"],
            "fd001_rmse_raw": test["test_rmse"],
            "fd001_score_raw": test["test_score"],
            "interval_coverage": test["test_interval_coverage_capped"],
        }
        for subset in ("FD002", "FD003", "FD004"):
            started = time.monotonic()
            units = cmapss.load_units(data / f"train_{subset}.txt")
            params = _shipped_params(f"rul-{subset.lower()}")
            conditions = rul.conditions_of(subset)
            value = rul_selection.cross_validate(units, conditions, params, folds).rmse
            figures[f"cv_rmse_{subset.lower()}"] = value
            print(
                f"{subset} {folds}-fold unit-grouped CV RMSE {value:.2f} "
                f"({len(units)} units, {time.monotonic() - started:.0f} s)",
                flush=True,
            )
    return figures


def score_test_set(model: rul.RulModel, test_path: Path, truth_path: Path) -> dict[str, float]:
    """RMSE, PHM08 score and interval coverage at the last cycle of each test unit,
    against the truth capped at the model's cap and against the truth as given."""
    units = cmapss.load_units(test_path)
    truth = cmapss.load_truth(truth_path)
    if len(truth) != len(units):
        raise ValueError(f"{truth_path.name}: {len(truth)} values for {len(units)} test units")
    point, lower, upper = rul.predict_last_cycles(model, units)
    capped = np.minimum(truth, model.cap)
    return {
        "test_rmse_capped": cmapss.rmse(point, capped),
        "test_score_capped": cmapss.phm08_score(point, capped),
        "test_rmse": cmapss.rmse(point, truth),
        "test_score": cmapss.phm08_score(point, truth),
        "test_interval_coverage_capped": float(np.mean((lower <= capped) & (capped <= upper))),
    }


def _shipped_params(name: str) -> rul.RulParams:
    """The parameters the shipped artifact was chosen with, one seed as in its selection
    (so the figure reproduces the manifest's CV RMSE for the same folds)."""
    entry = artifacts.read_manifest(artifacts.DEFAULT_DIRECTORY)["artifacts"][name]
    names = {f.name for f in dataclasses.fields(rul.RulParams)} - {"seeds"}
    return rul.RulParams(**{k: v for k, v in entry["params"].items() if k in names}, seeds=1)


def _shipped(name: str) -> rul.RulModel:
    loaded = artifacts.load_artifact(artifacts.DEFAULT_DIRECTORY, name)
    return rul.RulModel.from_arrays(loaded.arrays)


def _shipped_matches(train_file: Path, name: str) -> bool:
    entry = artifacts.read_manifest(artifacts.DEFAULT_DIRECTORY)["artifacts"].get(name)
    return bool(entry) and entry["training_data"] == artifacts.fingerprint([train_file])


def score_directory(directory: Path) -> dict[str, float]:
    figures: dict[str, float] = {}
    for test_path in sorted(directory.glob("test_FD00[1-4].txt")):
        subset = re.findall(r"FD00\d", test_path.name)[0]
        truth_path = directory / f"RUL_{subset}.txt"
        if not truth_path.is_file():
            continue
        result = score_test_set(_shipped(f"rul-{subset.lower()}"), test_path, truth_path)
        key = subset.lower()
        figures |= {
            f"{key}_rmse": result["test_rmse_capped"],
            f"{key}_score": result["test_score_capped"],
            f"{key}_rmse_raw": result["test_rmse"],
            f"{key}_score_raw": result["test_score"],
        }
        print(
            f"{subset}: RMSE {result['test_rmse_capped']:.2f} (capped truth), "
            f"{result['test_rmse']:.2f} (as given); score {result['test_score_capped']:.0f} / "
            f"{result['test_score']:.0f}",
            flush=True,
        )
    return figures


def _readings(rows: int, machines: int = 50) -> list[pb.IngestReadingsRequest]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    batches, current = [], []
    for index in range(rows):
        moment = timestamp_pb2.Timestamp()
        moment.FromDatetime(start + timedelta(seconds=index // machines))
        current.append(
            sensor_reading_pb2.SensorReading(
                machine_id=f"machine-{index % machines:03d}",
                sensor="vibration",
                time=moment,
                value=float(index % 997) / 10.0,
                settings={"speed_rpm": 1500.0},
            )
        )
        if len(current) == BATCH:
            batches.append(pb.IngestReadingsRequest(readings=current))
            current = []
    if current:
        batches.append(pb.IngestReadingsRequest(readings=current))
    return batches


def ingestion_figures(rows: int, postgres_url: str) -> dict[str, float]:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    plain = make_url(postgres_url).set(drivername="postgresql").render_as_string(False)
    batches = _readings(rows)
    environ = {"DATABASE_URL": postgres_url, "MFG_DATABASE__SCHEMA_NAME": schema}
    try:
        with tempfile.TemporaryDirectory() as scratch:
            settings = settings_for("maintenance", Path(scratch), **environ)
            with serve(settings) as service, channel_to(service.port) as channel:
                stub = maintenance_service_pb2_grpc.MaintenanceServiceStub(channel)
                started = time.perf_counter()
                reply = stub.IngestReadings(iter(batches))
                grpc_s = time.perf_counter() - started
        assert reply.stored_count == rows, reply
        with psycopg.connect(plain, autocommit=True) as connection:
            table = sql.Identifier(schema, "sensor_readings")
            connection.execute(sql.SQL("TRUNCATE {}").format(table))
            started = time.perf_counter()
            with (
                connection.transaction(),
                connection.cursor() as cursor,
                cursor.copy(
                    sql.SQL(
                        "COPY {} (machine_id, sensor, time, value, settings) FROM STDIN"
                    ).format(table)
                ) as copy,
            ):
                for request in batches:
                    for r in request.readings:
                        copy.write_row(
                            (
                                r.machine_id,
                                r.sensor,
                                r.time.ToDatetime(tzinfo=UTC),
                                r.value,
                                psycopg.types.json.Jsonb(dict(r.settings)),
                            )
                        )
            copy_s = time.perf_counter() - started
            count = connection.execute(sql.SQL("SELECT count(*) FROM {}").format(table))
            assert count.fetchone() == (rows,)
    finally:
        with psycopg.connect(plain, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    grpc_rate, copy_rate = rows / grpc_s, rows / copy_s
    print(
        f"ingestion of {rows} readings into PostgreSQL: gRPC stream {grpc_rate:,.0f} rows/s "
        f"({grpc_s:.2f} s), COPY {copy_rate:,.0f} rows/s ({copy_s:.2f} s), "
        f"ratio {grpc_rate / copy_rate:.2f}",
        flush=True,
    )
    return {"ingest_rows_per_s": grpc_rate, "ingest_vs_copy": grpc_rate / copy_rate}


def alert_figures(samples: int, postgres_url: str) -> dict[str, float]:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    environ = {"DATABASE_URL": postgres_url, "MFG_DATABASE__SCHEMA_NAME": schema}
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=1).ping()
        environ["REDIS_URL"] = REDIS_URL
        backend = "Redis Streams"
    except (redis.RedisError, OSError):
        backend = "in-process stream"
    plain = make_url(postgres_url).set(drivername="postgresql").render_as_string(False)
    latencies: list[float] = []
    try:
        with tempfile.TemporaryDirectory() as scratch:
            settings = settings_for("maintenance", Path(scratch), **environ)
            with serve(settings) as service, channel_to(service.port) as channel:
                stub = maintenance_service_pb2_grpc.MaintenanceServiceStub(channel)
                stub.CreateAlertRule(
                    pb.CreateAlertRuleRequest(
                        rule=alert_pb2.AlertRule(
                            kind=alert_pb2.RULE_KIND_THRESHOLD,
                            severity=alert_pb2.SEVERITY_P0,
                            sensor="temp",
                            upper_limit=100.0,
                        )
                    )
                )
                received: queue.Queue[float] = queue.Queue()
                call = stub.WatchAlerts(pb.WatchAlertsRequest())

                def pump() -> None:
                    with contextlib.suppress(grpc.RpcError):  # cancelled at the end
                        for _ in call:
                            received.put(time.perf_counter())

                threading.Thread(target=pump, daemon=True).start()
                time.sleep(0.5)
                moment = timestamp_pb2.Timestamp()
                moment.FromDatetime(datetime.now(UTC))
                for index in range(samples):
                    request = pb.IngestReadingsRequest(
                        readings=[
                            sensor_reading_pb2.SensorReading(
                                machine_id=f"hot-{index}", sensor="temp", time=moment, value=150.0
                            )
                        ]
                    )
                    sent = time.perf_counter()
                    stub.IngestReadings(iter([request]))
                    latencies.append((received.get(timeout=10) - sent) * 1000)
                call.cancel()
    finally:
        with psycopg.connect(plain, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    p99 = float(np.percentile(latencies, 99))
    print(
        f"alert latency over {samples} alerts ({backend}): median "
        f"{statistics.median(latencies):.1f} ms, p99 {p99:.1f} ms",
        flush=True,
    )
    return {"alert_p99_ms": p99}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cmapss", type=Path, help="score test/RUL pairs found in DIR")
    parser.add_argument("--retrain", action="store_true", help="train rul-fd001 in this run")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--alerts", type=int, default=200)
    parser.add_argument("--postgres", default=POSTGRES_URL)
    parser.add_argument("--only", choices=["ingest", "alerts", "rul"], help="measure one part")
    args = parser.parse_args(argv)
    # The quick, service-level figures first; cross-validation takes longest.
    parts = {
        "ingest": lambda: ingestion_figures(args.rows, args.postgres),
        "alerts": lambda: alert_figures(args.alerts, args.postgres),
        "rul": lambda: rul_figures(SHARED / "cmapss", args.retrain, args.folds),
    }
    if args.cmapss:
        figures = score_directory(args.cmapss)
        if not figures:
            print(f"no test_FD00N.txt / RUL_FD00N.txt pairs in {args.cmapss}", file=sys.stderr)
            return 1
    elif args.only:
        figures = parts[args.only]()
    else:
        figures = {}
        for measure in parts.values():
            figures |= measure()
        keys = ["fd001_rmse", "fd001_score", "cv_rmse_fd002", "cv_rmse_fd003", "cv_rmse_fd004"]
        keys += ["ingest_rows_per_s", "ingest_vs_copy", "alert_p99_ms", "interval_coverage"]
        figures = {k: figures[k] for k in keys}
    print("maintenance: " + " ".join(f"{k}={v:.2f}" for k, v in figures.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
