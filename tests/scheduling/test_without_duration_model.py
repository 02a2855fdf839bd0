"""A scheduling service whose duration model did not load (no manifest in models_dir).

Calls that need the model to estimate left-out durations are answered UNAVAILABLE saying
which duration and why; calls with every duration given are served as usual.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from manufacturing.scheduling.v1 import schedule_pb2, scheduling_service_pb2_grpc
from manufacturing.scheduling.v1 import scheduling_service_pb2 as pb

from services.scheduling.app import DURATION_MODEL
from tests.harness import channel_to, serve, settings_for
from tests.scheduling.test_estimated_durations import partly_known, work
from tests.scheduling.test_rpcs import assert_repair, assert_schedule_feasible, op, seconds, shop


@pytest.fixture(scope="module")
def without_model(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[scheduling_service_pb2_grpc.SchedulingServiceStub]:
    folder: Path = tmp_path_factory.mktemp("no-duration-model")
    (folder / "models").mkdir()
    settings = settings_for("scheduling", folder, MFG_MODELS_DIR=str(folder / "models"))
    with serve(settings) as service, channel_to(service.port) as channel:
        assert service.readiness.failing_checks() == ["models"]
        yield scheduling_service_pb2_grpc.SchedulingServiceStub(channel)


def assert_unavailable(error: grpc.RpcError, first: str) -> None:
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    details = str(error.details())
    assert f"the first at {first}" in details
    assert f"model {DURATION_MODEL} is not serving" in details
    assert "no usable manifest" in details


# partly_known() leaves out problem.jobs[0].operations[0] on m0 first.
FIRST_LEFT_OUT = "problem.jobs[0].operations[0].eligible_machines[0].duration"


def test_solve_with_durations_left_out_is_unavailable(without_model):
    with pytest.raises(grpc.RpcError) as caught:
        without_model.Solve(pb.SolveRequest(problem=partly_known(), time_limit=seconds(1)))
    assert_unavailable(caught.value, FIRST_LEFT_OUT)


def test_solve_stream_with_durations_left_out_is_unavailable(without_model):
    request = pb.SolveStreamRequest(problem=partly_known(), time_limit=seconds(1))
    with pytest.raises(grpc.RpcError) as caught:
        list(without_model.SolveStream(request))
    assert_unavailable(caught.value, FIRST_LEFT_OUT)


def test_every_duration_given_is_solved_and_rescheduled(without_model):
    schedule = without_model.Solve(pb.SolveRequest(problem=shop(), time_limit=seconds(2))).schedule
    assert schedule.status == schedule_pb2.SOLVE_STATUS_OPTIMAL
    assert_schedule_feasible(schedule, shop())
    rush = schedule_pb2.Job(id="rush", operations=[op(("b", 2))])
    repaired = without_model.Reschedule(
        pb.RescheduleRequest(
            schedule_id=schedule.id,
            disruptions=[pb.Disruption(rush_job=pb.RushJob(job=rush))],
            current_time=1,
            time_limit=seconds(1),
        )
    ).schedule
    assert_repair(schedule, repaired, 1)
    # A rush job leaving its duration out needs the model.
    left_out = op(("b", 0))
    left_out.work.CopyFrom(work("P01", 10))
    with pytest.raises(grpc.RpcError) as caught:
        without_model.Reschedule(
            pb.RescheduleRequest(
                schedule_id=schedule.id,
                disruptions=[
                    pb.Disruption(
                        rush_job=pb.RushJob(job=schedule_pb2.Job(id="rush", operations=[left_out]))
                    )
                ],
                current_time=1,
            )
        )
    assert_unavailable(
        caught.value, "disruptions[0].rush_job.job.operations[0].eligible_machines[0].duration"
    )
