"""Readings, predictions, anomalies, alerts, health and planning over a real server."""

from __future__ import annotations

import itertools
import queue
import threading
from datetime import UTC, datetime, timedelta

import grpc
import numpy as np
import pytest
from google.protobuf import duration_pb2, timestamp_pb2
from manufacturing.maintenance.v1 import alert_pb2, sensor_reading_pb2
from manufacturing.maintenance.v1 import maintenance_service_pb2 as pb

from services.maintenance import artifacts
from services.maintenance.domain import cmapss
from services.maintenance.domain.rul import RUL_SENSORS
from tests.errors_support import field_violations
from tests.shared_data import shared_data

START = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def ts(moment: datetime) -> timestamp_pb2.Timestamp:
    message = timestamp_pb2.Timestamp()
    message.FromDatetime(moment)
    return message


def reading(machine: str, sensor: str, step: int, value: float, **settings: float):
    return sensor_reading_pb2.SensorReading(
        machine_id=machine,
        sensor=sensor,
        time=ts(START + timedelta(minutes=step)),
        value=value,
        settings=settings,
    )


def ingest(stub, readings, batch=5000):
    return stub.IngestReadings(
        iter(
            [
                pb.IngestReadingsRequest(readings=readings[i : i + batch])
                for i in range(0, len(readings), batch)
            ]
        )
    )


def unit_readings(
    machine: str, unit: cmapss.Unit, cycles: int | None = None
) -> list[sensor_reading_pb2.SensorReading]:
    """One C-MAPSS unit as readings: one time step (minute) per cycle."""
    out = []
    for row in range(min(unit.length, cycles or unit.length)):
        settings = {f"setting{i + 1}": float(unit.settings[row, i]) for i in range(3)}
        for sensor in RUL_SENSORS:
            value = float(unit.sensors[row, cmapss.SENSOR_NAMES.index(sensor)])
            out.append(reading(machine, sensor, row, value, **settings))
    return out


@pytest.fixture(scope="module")
def fd001_test_units():
    folder = shared_data("cmapss")
    return cmapss.load_units(folder / "test_FD001.txt")[:3]


def test_list_machines_and_page_through_readings(maintenance_stub):
    rows = [
        reading(f"m{m}", s, step, float(step)) for m in range(3) for s in "ab" for step in range(5)
    ]
    assert ingest(maintenance_stub, rows).stored_count == 30

    first = maintenance_stub.ListMachines(pb.ListMachinesRequest(page_size=2))
    second = maintenance_stub.ListMachines(
        pb.ListMachinesRequest(page_size=2, page_token=first.next_page_token)
    )
    assert [m.machine_id for m in first.machines] == ["m0", "m1"]
    assert [m.machine_id for m in second.machines] == ["m2"] and not second.next_page_token
    assert (first.machines[0].sensor_count, first.machines[0].reading_count) == (2, 10)

    request = pb.GetReadingsRequest(
        machine_id="m1",
        start_time=ts(START + timedelta(minutes=1)),
        end_time=ts(START + timedelta(minutes=4)),
        page_size=4,
    )
    seen, token = [], ""
    while True:
        request.page_token = token
        page = maintenance_stub.GetReadings(request)
        seen += [(r.time.ToDatetime(tzinfo=UTC), r.sensor) for r in page.readings]
        token = page.next_page_token
        if not token:
            break
    expected = [(START + timedelta(minutes=m), s) for m in (1, 2, 3) for s in "ab"]
    assert seen == expected

    with pytest.raises(grpc.RpcError) as caught:
        maintenance_stub.GetReadings(
            pb.GetReadingsRequest(machine_id="m1", start_time=ts(START), end_time=ts(START))
        )
    assert "end_time" in field_violations(caught.value)


def test_remaining_life_inline_and_stored_agree(maintenance_stub, fd001_test_units):
    unit = fd001_test_units[0]
    rows = unit_readings("engine-1", unit)
    inline = maintenance_stub.PredictRemainingLife(
        pb.PredictRemainingLifeRequest(window=pb.ReadingWindow(readings=rows), model="rul-fd001")
    ).remaining_life
    assert 0 <= inline.rul_lower_cycles <= inline.rul_cycles <= inline.rul_upper_cycles <= 125
    assert inline.health_index == pytest.approx(inline.rul_cycles / 125)
    assert inline.cycles_used == unit.length
    assert inline.model_version.startswith("rul-fd001@")

    ingest(maintenance_stub, rows)
    stored = maintenance_stub.PredictRemainingLife(
        pb.PredictRemainingLifeRequest(machine_id="engine-1", model="rul-fd001")
    ).remaining_life
    assert stored.rul_cycles == pytest.approx(inline.rul_cycles)


def test_remaining_life_rejects_bad_windows(maintenance_stub, fd001_test_units):
    rows = unit_readings("e", fd001_test_units[0])
    short = rows[: len(RUL_SENSORS) * 3]
    cases = [
        (
            pb.PredictRemainingLifeRequest(window=pb.ReadingWindow(readings=short)),
            "window.readings",
        ),
        (
            pb.PredictRemainingLifeRequest(window=pb.ReadingWindow(readings=rows[1:])),
            "window.readings",
        ),
        (
            pb.PredictRemainingLifeRequest(window=pb.ReadingWindow(readings=rows), model="x"),
            "model",
        ),
        (pb.PredictRemainingLifeRequest(), "source"),
    ]
    nan = sensor_reading_pb2.SensorReading()
    nan.CopyFrom(rows[0])
    nan.value = float("nan")
    cases.append(
        (
            pb.PredictRemainingLifeRequest(window=pb.ReadingWindow(readings=[nan, *rows[1:]])),
            "window.readings[0].value",
        )
    )
    for request, field in cases:
        with pytest.raises(grpc.RpcError) as caught:
            maintenance_stub.PredictRemainingLife(request)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in field_violations(caught.value)

    with pytest.raises(grpc.RpcError) as caught:
        maintenance_stub.PredictRemainingLife(pb.PredictRemainingLifeRequest(machine_id="ghost"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    ingest(maintenance_stub, [reading("thermo", "temp", 0, 1.0)])
    with pytest.raises(grpc.RpcError) as caught:
        maintenance_stub.PredictRemainingLife(pb.PredictRemainingLifeRequest(machine_id="thermo"))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION


# Hot, slow spindle: the AI4I heat-dissipation failure condition.
HEAT_DISSIPATION_FAILURE = pb.PredictFailureRequest(
    product_type=pb.PRODUCT_TYPE_L,
    air_temperature_k=302.5,
    process_temperature_k=310.5,
    rotational_speed_rpm=1300,
    torque_nm=55,
    tool_wear_min=50,
)


def test_predict_failure_names_the_mode_and_rejects_bad_input(maintenance_stub):
    reply = maintenance_stub.PredictFailure(HEAT_DISSIPATION_FAILURE)
    assert reply.failure_probability > 0.5
    assert reply.modes[0].mode == "HDF"
    healthy = maintenance_stub.PredictFailure(
        pb.PredictFailureRequest(
            product_type=pb.PRODUCT_TYPE_M,
            air_temperature_k=298.0,
            process_temperature_k=308.6,
            rotational_speed_rpm=1550,
            torque_nm=40,
            tool_wear_min=20,
        )
    )
    assert healthy.failure_probability < 0.1

    with pytest.raises(grpc.RpcError) as caught:
        maintenance_stub.PredictFailure(
            pb.PredictFailureRequest(air_temperature_k=float("inf"), torque_nm=-1)
        )
    violations = field_violations(caught.value)
    assert {"product_type", "air_temperature_k", "torque_nm"} <= set(violations)


def _watch(stub, request, received: queue.Queue, ready: threading.Event):
    call = stub.WatchAlerts(request)

    def pump():
        try:
            for message in call:
                received.put(message)
        except grpc.RpcError:
            pass

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return call, thread


def cursor_order(cursor: str) -> tuple[int, ...]:
    return tuple(int(part) for part in cursor.split("-"))


def _wait_subscribed(stub):
    # The watch resolves "from now" on its first read; give it a moment to start.
    threading.Event().wait(0.3)


def test_threshold_alert_is_streamed_once_and_reopens_after_acknowledgement(maintenance_stub):
    rule = maintenance_stub.CreateAlertRule(
        pb.CreateAlertRuleRequest(
            rule=alert_pb2.AlertRule(
                machine_id="press",
                kind=alert_pb2.RULE_KIND_THRESHOLD,
                severity=alert_pb2.SEVERITY_P1,
                sensor="temp",
                upper_limit=80.0,
            )
        )
    ).rule
    assert rule.id
    received: queue.Queue = queue.Queue()
    call, thread = _watch(
        maintenance_stub, pb.WatchAlertsRequest(machine_ids=["press"]), received, threading.Event()
    )
    _wait_subscribed(maintenance_stub)
    try:
        reply = ingest(
            maintenance_stub,
            [
                reading("press", "temp", 0, 70.0),
                reading("press", "temp", 1, 90.0),
                reading("press", "temp", 2, 95.0),
                reading("other", "temp", 1, 99.0),
            ],
        )
        assert reply.alerts_raised == 1
        first = received.get(timeout=10)
        assert (first.alert.machine_id, first.alert.severity, first.alert.value) == (
            "press",
            alert_pb2.SEVERITY_P1,
            90.0,
        )
        # Still open: a further breach raises nothing.
        assert ingest(maintenance_stub, [reading("press", "temp", 3, 99.0)]).alerts_raised == 0
        acked = maintenance_stub.AcknowledgeAlert(
            pb.AcknowledgeAlertRequest(alert_id=first.alert.id, acknowledged_by="ops")
        ).alert
        assert acked.acknowledged and acked.acknowledged_by == "ops"
        assert ingest(maintenance_stub, [reading("press", "temp", 4, 99.5)]).alerts_raised == 1
        second = received.get(timeout=10)
        assert second.alert.id != first.alert.id
        assert cursor_order(second.cursor) > cursor_order(first.cursor)
        assert received.empty()
    finally:
        call.cancel()
        thread.join(timeout=5)

    with pytest.raises(grpc.RpcError) as caught:
        maintenance_stub.AcknowledgeAlert(
            pb.AcknowledgeAlertRequest(alert_id="nope", acknowledged_by="ops")
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as caught:
        maintenance_stub.CreateAlertRule(
            pb.CreateAlertRuleRequest(
                rule=alert_pb2.AlertRule(
                    kind=alert_pb2.RULE_KIND_THRESHOLD, severity=alert_pb2.SEVERITY_P0
                )
            )
        )
    assert {"rule.sensor", "rule.upper_limit"} <= set(field_violations(caught.value))


def test_anomaly_model_scores_and_alerts(maintenance_stub):
    generator = np.random.default_rng(0)
    normal = []
    for step in range(80):
        base = generator.normal(0, 1)
        normal += [
            reading("pump", "pressure", step, 10 + base + generator.normal(0, 0.1)),
            reading("pump", "flow", step, 5 + 0.5 * base + generator.normal(0, 0.1)),
        ]
    ingest(maintenance_stub, normal)
    with pytest.raises(grpc.RpcError) as caught:
        maintenance_stub.ScoreReadings(pb.ScoreReadingsRequest(machine_id="pump"))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    trained = maintenance_stub.TrainAnomalyModel(pb.TrainAnomalyModelRequest(machine_id="pump"))
    assert list(trained.sensors) == ["flow", "pressure"] and trained.training_steps == 80
    maintenance_stub.CreateAlertRule(
        pb.CreateAlertRuleRequest(
            rule=alert_pb2.AlertRule(
                kind=alert_pb2.RULE_KIND_ANOMALY, severity=alert_pb2.SEVERITY_P2
            )
        )
    )
    # Pressure up with flow down breaks their correlation, though each is in range.
    scored = maintenance_stub.ScoreReadings(
        pb.ScoreReadingsRequest(
            machine_id="pump",
            readings=[
                reading("pump", "pressure", 100, 10.2),
                reading("pump", "flow", 100, 5.1),
                reading("pump", "pressure", 101, 11.5),
                reading("pump", "flow", 101, 4.2),
            ],
        )
    )
    assert [s.anomalous for s in scored.scores] == [False, True]
    assert len(scored.alerts) == 1 and scored.alerts[0].kind == alert_pb2.RULE_KIND_ANOMALY

    stored = maintenance_stub.ScoreReadings(pb.ScoreReadingsRequest(machine_id="pump"))
    assert len(stored.scores) == 80
    assert sum(s.anomalous for s in stored.scores) <= 2


def test_health_and_plan_follow_remaining_life(maintenance_stub, fd001_test_units):
    for index, unit in enumerate(fd001_test_units):
        ingest(maintenance_stub, unit_readings(f"engine-{index}", unit, cycles=40))
    maintenance_stub.CreateAlertRule(
        pb.CreateAlertRuleRequest(
            rule=alert_pb2.AlertRule(
                kind=alert_pb2.RULE_KIND_RUL_BELOW,
                severity=alert_pb2.SEVERITY_P0,
                rul_horizon_cycles=500,
            )
        )
    )
    health = maintenance_stub.GetMachineHealth(
        pb.GetMachineHealthRequest(machine_id="engine-0", model="rul-fd001")
    )
    assert health.HasField("remaining_life")
    # The RUL rule's horizon exceeds any prediction: a P0 alert is open, risk at least 0.9.
    assert [a.kind for a in health.open_alerts] == [alert_pb2.RULE_KIND_RUL_BELOW]
    assert health.risk >= 0.9

    ingest(maintenance_stub, [reading("thermo", "temp", 0, 1.0)])
    plan = maintenance_stub.PlanMaintenance(
        pb.PlanMaintenanceRequest(
            machine_ids=["engine-0", "engine-1", "engine-2", "thermo"],
            horizon=duration_pb2.Duration(seconds=400 * 3600),
            cycle_duration=duration_pb2.Duration(seconds=3600),
            window_duration=duration_pb2.Duration(seconds=8 * 3600),
            max_parallel=1,
            start_time=ts(START),
            model="rul-fd001",
        )
    )
    windows = [(w.start_time.ToDatetime(), w.end_time.ToDatetime()) for w in plan.windows]
    assert windows == sorted(windows)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(windows))
    assert any(u.startswith("thermo:") for u in plan.unplanned)

    with pytest.raises(grpc.RpcError) as caught:
        maintenance_stub.PlanMaintenance(pb.PlanMaintenanceRequest(machine_ids=["a", "a"]))
    assert {"machine_ids", "horizon", "cycle_duration", "window_duration"} <= set(
        field_violations(caught.value)
    )


def test_service_info_lists_models(maintenance_stub):
    info = maintenance_stub.GetServiceInfo(pb.GetServiceInfoRequest()).info
    manifest = artifacts.read_manifest(artifacts.DEFAULT_DIRECTORY)["artifacts"]
    assert dict(info.model_versions) == {name: e["version"] for name, e in manifest.items()}
    assert {"rul-fd001", "failure-ai4i"} <= set(info.model_versions)


def test_watch_rejects_a_malformed_cursor_and_unknown_severity(maintenance_stub):
    for request, field in [
        (pb.WatchAlertsRequest(resume_after="yesterday"), "resume_after"),
        (pb.WatchAlertsRequest(severities=[alert_pb2.Severity.ValueType(7)]), "severities[0]"),
    ]:
        with pytest.raises(grpc.RpcError) as caught:
            next(iter(maintenance_stub.WatchAlerts(request, timeout=5)))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in field_violations(caught.value)


def test_bulk_batch_keeps_awkward_text_and_exact_values_and_lists_its_bad_readings(
    maintenance_stub,
):
    # Large enough for the bulk (COPY) path on PostgreSQL; the same batch on SQLite.
    machine = 'press\t"7"\\line\n2 ü'
    settings = {'mode "a"\\b': 1.5, "load": 0.1}
    rows = [reading(machine, "temp", step, step / 10, **settings) for step in range(300)]
    rows[3].time.nanos = 123_456_789  # kept to the microsecond
    rows[4].value = 1 / 3
    rows[5].value = 1e300
    rows[6].CopyFrom(rows[2])
    rows[6].value = 99.0  # repeats the key of rows[2]: the first one wins
    rows[7].value = float("nan")
    rows[9].settings["load"] = float("inf")
    rows[11].time.seconds = 2**40  # beyond any calendar a datetime holds
    reply = ingest(maintenance_stub, rows)

    assert [(r.reading_index, r.field) for r in reply.rejected] == [
        (7, "readings[7].value"),
        (9, "readings[9].settings['load']"),
        (11, "readings[11].time"),
    ]
    assert (reply.stored_count, reply.duplicate_count) == (296, 1)
    stored = maintenance_stub.GetReadings(
        pb.GetReadingsRequest(machine_id=machine, page_size=1000)
    ).readings
    expected = [r for i, r in enumerate(rows) if i not in {6, 7, 9, 11}]
    assert [(r.sensor, r.value, dict(r.settings)) for r in stored] == [
        (r.sensor, r.value, dict(r.settings)) for r in expected
    ]
    assert [r.time.ToDatetime(tzinfo=UTC) for r in stored] == [
        r.time.ToDatetime(tzinfo=UTC) for r in expected
    ]

    # Retried with one new reading: only that one is stored.
    again = ingest(maintenance_stub, [*rows, reading(machine, "temp", 300, 1.0)])
    assert (again.stored_count, again.duplicate_count, again.rejected_count) == (1, 297, 3)


def test_oversized_batch_ends_the_stream_and_counts_the_batches_already_stored(maintenance_stub):
    rows = [reading("line", "temp", step, 1.0) for step in range(10_601)]
    # Two bulk batches, then one over the limit; the first two are committed.
    requests = [
        pb.IngestReadingsRequest(readings=rows[:300]),
        pb.IngestReadingsRequest(readings=rows[300:600]),
        pb.IngestReadingsRequest(readings=rows[600:]),
    ]
    with pytest.raises(grpc.RpcError) as caught:
        maintenance_stub.IngestReadings(iter(requests))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (
        "(600 readings of earlier batches were stored)"
        in field_violations(caught.value)["readings"]
    )
    machines = maintenance_stub.ListMachines(pb.ListMachinesRequest()).machines
    assert [(m.machine_id, m.reading_count) for m in machines] == [("line", 600)]
