"""Reschedule with maintenance taken into account, against a real maintenance service.

Scheduling reaches maintenance through a recording proxy, so the tests see what was asked
(and that nothing is asked without the option). The maintenance service is stocked as in
test_maintenance_awareness: "engine" needs maintenance at once, "thermo" is at high risk
with no plan, "lathe" is unknown to it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from manufacturing.maintenance.v1 import maintenance_service_pb2 as maintenance_pb
from manufacturing.maintenance.v1 import maintenance_service_pb2_grpc
from manufacturing.scheduling.v1 import schedule_pb2, scheduling_service_pb2_grpc
from manufacturing.scheduling.v1 import scheduling_service_pb2 as pb

from services.scheduling.convert import problem_from_proto
from services.scheduling.servicer import NO_MAINTENANCE
from tests.errors_support import field_violations
from tests.harness import channel_to, serve, settings_for
from tests.scheduling.checker import assert_feasible
from tests.scheduling.test_maintenance_awareness import (
    WINDOW,
    at,
    aware,
    closed_port,
    scheduling_asking,
    shop,
    stock,
)
from tests.scheduling.test_rpcs import assert_repair, op, seconds, solved

PLAN = "/manufacturing.maintenance.v1.MaintenanceService/PlanMaintenance"
HEALTH = "/manufacturing.maintenance.v1.MaintenanceService/GetMachineHealth"
DELAY = 5
RUSH = schedule_pb2.Job(id="rush", operations=[op(("lathe", 5))])


class Recorder(grpc.GenericRpcHandler):
    """Passes every unary call on to ``target`` unchanged, recording method and request."""

    def __init__(self, target: grpc.Channel) -> None:
        self._target = target
        self._lock = threading.Lock()
        self.calls: list[tuple[str, bytes]] = []

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        # No (de)serializers: bytes in, bytes out.
        forward = self._target.unary_unary(method, None, None)

        def handle(request: bytes, context: grpc.ServicerContext) -> bytes:
            with self._lock:
                self.calls.append((method, request))
            try:
                return bytes(
                    forward(
                        request,
                        timeout=context.time_remaining(),
                        metadata=context.invocation_metadata(),
                    )
                )
            except grpc.RpcError as error:
                context.abort(error.code(), error.details() or "")

        return grpc.unary_unary_rpc_method_handler(handle)

    def methods(self) -> list[str]:
        with self._lock:
            return [method for method, _ in self.calls]

    def plans(self) -> list[maintenance_pb.PlanMaintenanceRequest]:
        with self._lock:
            return [
                maintenance_pb.PlanMaintenanceRequest.FromString(request)
                for method, request in self.calls
                if method == PLAN
            ]


@contextmanager
def recording_proxy(target_port: int) -> Iterator[tuple[Recorder, int]]:
    with grpc.insecure_channel(f"127.0.0.1:{target_port}") as target:
        recorder = Recorder(target)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        server.add_generic_rpc_handlers((recorder,))
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        try:
            yield recorder, port
        finally:
            server.stop(grace=None)


@pytest.fixture(scope="module")
def asking_through_a_recorder(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[scheduling_service_pb2_grpc.SchedulingServiceStub, Recorder]]:
    folder: Path = tmp_path_factory.mktemp("maintenance-reschedule")
    with serve(settings_for("maintenance", folder / "m")) as maintenance:
        with channel_to(maintenance.port) as channel:
            stock(maintenance_service_pb2_grpc.MaintenanceServiceStub(channel))
        with (
            recording_proxy(maintenance.port) as (recorder, port),
            scheduling_asking(folder / "s", f"127.0.0.1:{port}") as stub,
        ):
            yield stub, recorder


def first_on(schedule: schedule_pb2.Schedule, machine: str) -> schedule_pb2.ScheduledOperation:
    return min((o for o in schedule.operations if o.machine_id == machine), key=lambda o: o.start)


def late(operation: schedule_pb2.ScheduledOperation, delay: int) -> pb.Disruption:
    ref = schedule_pb2.OperationRef(job_id=operation.job_id, operation_id=operation.operation_id)
    return pb.Disruption(operation_late=pb.OperationLate(operation=ref, delay=delay))


def free_from(
    original: schedule_pb2.Schedule,
    machine: str,
    now: int,
    running: schedule_pb2.ScheduledOperation,
) -> int:
    """When ``machine``'s operations started before ``now`` are over (``running`` late)."""
    ends = [
        o.end + (DELAY if o == running else 0)
        for o in original.operations
        if o.machine_id == machine and o.start < now
    ]
    return max([now, *ends])


def engine_late_with_maintenance(
    stub: scheduling_service_pb2_grpc.SchedulingServiceStub,
    original: schedule_pb2.Schedule,
    limit_s: float,
) -> tuple[schedule_pb2.ScheduledOperation, int, pb.RescheduleResponse]:
    """Reschedule just after the first operation on engine started, as it runs late, with
    the maintenance option (engine's maintenance planned at once covers that operation):
    the operation, now, and the reply."""
    running = first_on(original, "engine")
    now = running.start + 1
    reply = stub.Reschedule(
        pb.RescheduleRequest(
            schedule_id=original.id,
            disruptions=[late(running, DELAY)],
            current_time=now,
            time_limit=seconds(limit_s),
            maintenance=aware(),
        )
    )
    return running, now, reply


def test_reschedule_keeps_clear_of_maintenance_from_now_on_and_running_work_finishes(
    asking_through_a_recorder,
):
    stub, recorder = asking_through_a_recorder
    original = solved(stub, shop())
    assert_feasible(problem_from_proto(shop()), original.operations)
    running, now, reply = engine_late_with_maintenance(stub, original, 5)
    assert not reply.warnings
    repaired = reply.schedule
    assert repaired.status != schedule_pb2.SOLVE_STATUS_INFEASIBLE
    assert_repair(original, repaired, now)  # started work put, the returned problem feasible
    # Maintenance was asked to plan from now, not from time 0.
    assert [p.start_time for p in recorder.plans()] == [at(now)]
    # The checker, given the shop with what it expects: engine down for the window planned
    # at now once its running operation ends late; thermo (high risk) idle from now on.
    window = int(WINDOW / timedelta(minutes=1))
    engine_free = free_from(original, "engine", now, running)
    assert engine_free == running.end + DELAY
    expected = shop()
    for machine, start, end in (
        ("engine", engine_free, now + window),
        ("thermo", free_from(original, "thermo", now, running), 10**9),
    ):
        next(m for m in expected.machines if m.id == machine).unavailable.add(start=start, end=end)
    job = next(j for j in expected.jobs if j.id == running.job_id)
    job.operations[int(running.operation_id)].eligible_machines[0].duration += DELAY
    assert_feasible(problem_from_proto(expected), repaired.operations)
    assert any(f"'engine' stops at {engine_free}" in note for note in repaired.notes)
    assert any(note.startswith("thermo at risk") for note in repaired.notes)
    stored = stub.GetSchedule(pb.GetScheduleRequest(id=repaired.id)).schedule
    assert stored == repaired


def test_an_unset_start_time_makes_the_current_time_now(asking_through_a_recorder):
    stub, recorder = asking_through_a_recorder
    original = solved(stub, shop())
    before = len(recorder.plans())
    asked = datetime.now(UTC)
    reply = stub.Reschedule(
        pb.RescheduleRequest(
            schedule_id=original.id,
            disruptions=[pb.Disruption(rush_job=pb.RushJob(job=RUSH))],
            current_time=100,
            time_limit=seconds(2),
            maintenance=pb.MaintenanceAwareness(),
        )
    )
    assert_repair(original, reply.schedule, 100)
    [plan] = recorder.plans()[before:]
    assert abs(plan.start_time.ToDatetime(UTC) - asked) < timedelta(seconds=30)


def test_without_the_option_maintenance_is_never_asked(asking_through_a_recorder):
    stub, recorder = asking_through_a_recorder
    before = len(recorder.methods())
    original = solved(stub, shop())
    list(stub.SolveStream(pb.SolveStreamRequest(problem=shop(), time_limit=seconds(1))))
    reply = stub.Reschedule(
        pb.RescheduleRequest(
            schedule_id=original.id,
            disruptions=[late(first_on(original, "engine"), 1)],
            current_time=1,
            time_limit=seconds(1),
        )
    )
    assert_repair(original, reply.schedule, 1)
    assert not reply.warnings
    assert recorder.methods()[before:] == []
    # The same calls with the option do ask (so the recorder would have seen it).
    stub.Solve(pb.SolveRequest(problem=shop(), time_limit=seconds(1), maintenance=aware()))
    assert {HEALTH, PLAN} <= set(recorder.methods()[before:])


def test_without_an_answer_from_maintenance_the_repair_comes_with_a_warning(tmp_path):
    with scheduling_asking(tmp_path, f"127.0.0.1:{closed_port()}", timeout_s="0.5") as stub:
        original = solved(stub, shop())
        started = time.monotonic()
        _, now, reply = engine_late_with_maintenance(stub, original, 2)
        took = time.monotonic() - started
    [warning] = reply.warnings
    assert "maintenance service did not answer" in warning
    assert warning in reply.schedule.notes
    assert_repair(original, reply.schedule, now)
    # Only the disruption changed the shop: no machine got downtime.
    assert all(not m.unavailable for m in reply.schedule.problem.machines)
    assert took < 2 + 0.5 + 0.5  # the limit (asking included) + allowance + transport


def test_without_a_maintenance_service_configured_the_repair_says_so(tmp_path):
    with scheduling_asking(tmp_path, "") as stub:
        original = solved(stub, shop(), 1)
        reply = stub.Reschedule(
            pb.RescheduleRequest(
                schedule_id=original.id,
                disruptions=[late(first_on(original, "lathe"), 1)],
                time_limit=seconds(1),
                maintenance=aware(),
            )
        )
    assert list(reply.warnings) == [NO_MAINTENANCE]
    assert_repair(original, reply.schedule, 0)


def test_a_current_time_beyond_the_calendar_is_refused(shared_scheduling_stub):
    original = solved(shared_scheduling_stub, shop(), 1)
    with pytest.raises(grpc.RpcError) as caught:
        shared_scheduling_stub.Reschedule(
            pb.RescheduleRequest(
                schedule_id=original.id,
                disruptions=[late(first_on(original, "lathe"), 1)],
                current_time=10**12,
                maintenance=aware(time_unit=seconds(86400)),
            )
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "maintenance" in field_violations(caught.value)
