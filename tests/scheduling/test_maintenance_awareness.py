"""Solve with maintenance taken into account: a real maintenance service in-process.

The maintenance service knows two of the three machines: "engine" (C-MAPSS readings and
an open P0 remaining-life alert, so maintenance is planned at once) and "thermo" (an open
P0 threshold alert but too little history for a plan). "lathe" is unknown to it.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2, timestamp_pb2
from manufacturing.maintenance.v1 import alert_pb2, maintenance_service_pb2_grpc, sensor_reading_pb2
from manufacturing.maintenance.v1 import maintenance_service_pb2 as maintenance_pb
from manufacturing.scheduling.v1 import schedule_pb2, scheduling_service_pb2_grpc
from manufacturing.scheduling.v1 import scheduling_service_pb2 as pb

from services.maintenance.domain import cmapss
from services.maintenance.domain.rul import RUL_SENSORS
from services.scheduling.convert import problem_from_proto
from tests.errors_support import field_violations
from tests.harness import channel_to, serve, settings_for
from tests.scheduling.checker import assert_feasible
from tests.scheduling.test_rpcs import op, seconds
from tests.shared_data import shared_data

START = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
WINDOW = timedelta(hours=8)  # the default maintenance window: 480 one-minute time units


def at(minute: int) -> timestamp_pb2.Timestamp:
    moment = timestamp_pb2.Timestamp()
    moment.FromDatetime(START + timedelta(minutes=minute))
    return moment


def engine_readings() -> list[sensor_reading_pb2.SensorReading]:
    unit = cmapss.load_units(shared_data("cmapss") / "test_FD001.txt")[0]
    return [
        sensor_reading_pb2.SensorReading(
            machine_id="engine",
            sensor=sensor,
            time=at(row),
            value=float(unit.sensors[row, cmapss.SENSOR_NAMES.index(sensor)]),
            settings={f"setting{i + 1}": float(unit.settings[row, i]) for i in range(3)},
        )
        for row in range(min(unit.length, 40))
        for sensor in RUL_SENSORS
    ]


def stock(stub: maintenance_service_pb2_grpc.MaintenanceServiceStub) -> None:
    for rule in (
        alert_pb2.AlertRule(
            kind=alert_pb2.RULE_KIND_RUL_BELOW,
            severity=alert_pb2.SEVERITY_P0,
            rul_horizon_cycles=500,  # beyond any prediction: an alert is open at once
        ),
        alert_pb2.AlertRule(
            machine_id="thermo",
            kind=alert_pb2.RULE_KIND_THRESHOLD,
            severity=alert_pb2.SEVERITY_P0,
            sensor="temp",
            upper_limit=50,
        ),
    ):
        stub.CreateAlertRule(maintenance_pb.CreateAlertRuleRequest(rule=rule))
    hot = sensor_reading_pb2.SensorReading(machine_id="thermo", sensor="temp", time=at(0), value=80)
    readings = [*engine_readings(), hot]
    stub.IngestReadings(iter([maintenance_pb.IngestReadingsRequest(readings=readings)]))


def shop() -> schedule_pb2.Problem:
    return schedule_pb2.Problem(
        machines=[schedule_pb2.Machine(id=m) for m in ("engine", "thermo", "lathe")],
        jobs=[
            schedule_pb2.Job(id="j1", operations=[op(("engine", 30)), op(("lathe", 20))]),
            schedule_pb2.Job(id="j2", operations=[op(("thermo", 10), ("lathe", 15))]),
            schedule_pb2.Job(id="j3", operations=[op(("lathe", 40)), op(("engine", 10))]),
        ],
    )


def aware(**fields: object) -> pb.MaintenanceAwareness:
    return pb.MaintenanceAwareness(start_time=at(0), **fields)  # type: ignore[arg-type]


@contextmanager
def scheduling_asking(
    folder: Path, maintenance_address: str, timeout_s: str = "10", **environ: str
) -> Iterator[scheduling_service_pb2_grpc.SchedulingServiceStub]:
    """A started scheduling service that asks maintenance at ``maintenance_address``."""
    settings = settings_for(
        "scheduling",
        folder,
        MFG_SCHEDULING__MAINTENANCE_ADDRESS=maintenance_address,
        MFG_SCHEDULING__MAINTENANCE_TIMEOUT_S=timeout_s,
        **environ,
    )
    with serve(settings) as scheduling, channel_to(scheduling.port) as channel:
        yield scheduling_service_pb2_grpc.SchedulingServiceStub(channel)


@pytest.fixture(scope="module")
def scheduling_with_maintenance(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[scheduling_service_pb2_grpc.SchedulingServiceStub]:
    folder: Path = tmp_path_factory.mktemp("maintenance-aware")
    with serve(settings_for("maintenance", folder / "m")) as maintenance:
        with channel_to(maintenance.port) as channel:
            stock(maintenance_service_pb2_grpc.MaintenanceServiceStub(channel))
        with scheduling_asking(folder / "s", f"127.0.0.1:{maintenance.port}") as stub:
            yield stub


def test_planned_maintenance_and_high_risk_machines_are_unavailable(
    scheduling_with_maintenance,
):
    reply = scheduling_with_maintenance.Solve(
        pb.SolveRequest(problem=shop(), time_limit=seconds(5), maintenance=aware())
    )
    assert not reply.warnings
    schedule = reply.schedule
    window = int(WINDOW / timedelta(minutes=1))
    # The feasibility checker, given the problem plus the maintenance window it expects.
    expected = shop()
    expected.machines[0].unavailable.add(start=0, end=window)
    assert_feasible(problem_from_proto(expected), schedule.operations)
    assert_feasible(problem_from_proto(schedule.problem), schedule.operations)
    engine = [o for o in schedule.operations if o.machine_id == "engine"]
    assert len(engine) == 2 and min(o.start for o in engine) >= window
    # thermo is at high risk with no maintenance planned: nothing runs on it.
    assert all(o.machine_id != "thermo" for o in schedule.operations)
    assert any("engine" in note and "[0, 480)" in note for note in schedule.notes)
    assert any(note.startswith("thermo at risk") for note in schedule.notes)


def test_a_risk_threshold_above_every_risk_leaves_thermo_available(scheduling_with_maintenance):
    reply = scheduling_with_maintenance.Solve(
        pb.SolveRequest(problem=shop(), time_limit=seconds(5), maintenance=aware(risk_threshold=1))
    )
    machines = {m.id: list(m.unavailable) for m in reply.schedule.problem.machines}
    assert machines == {
        "engine": [schedule_pb2.TimeWindow(start=0, end=480)],
        "thermo": [],
        "lathe": [],
    }
    assert_feasible(problem_from_proto(reply.schedule.problem), reply.schedule.operations)


@pytest.mark.parametrize(
    ("option", "field"),
    [
        (aware(time_unit=duration_pb2.Duration(seconds=-60)), "maintenance.time_unit"),
        (aware(risk_threshold=1.5), "maintenance.risk_threshold"),
        (
            aware(window_duration=duration_pb2.Duration(seconds=8 * 86400)),
            "maintenance.window_duration",
        ),
    ],
)
def test_bad_maintenance_options_name_the_field(scheduling_with_maintenance, option, field):
    with pytest.raises(grpc.RpcError) as caught:
        scheduling_with_maintenance.Solve(
            pb.SolveRequest(problem=shop(), time_limit=seconds(1), maintenance=option)
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(caught.value)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_without_an_answer_from_maintenance_the_schedule_comes_with_a_warning(tmp_path):
    with scheduling_asking(tmp_path, f"127.0.0.1:{closed_port()}", timeout_s="0.5") as stub:
        started = time.monotonic()
        reply = stub.Solve(
            pb.SolveRequest(problem=shop(), time_limit=seconds(2), maintenance=aware())
        )
        took = time.monotonic() - started
    [warning] = reply.warnings
    assert "maintenance service did not answer" in warning
    assert warning in reply.schedule.notes
    assert problem_from_proto(reply.schedule.problem) == problem_from_proto(shop())
    assert_feasible(problem_from_proto(shop()), reply.schedule.operations)
    assert took < 2 + 0.5 + 0.5  # the limit (asking included) + allowance + transport
