"""Schedules read back (GetSchedule, ListSchedules) pass the independent checker too.

ListSchedules returns summaries without placements; every schedule it lists, fetched with
GetSchedule, is checked against the problem it was solved for.
"""

from __future__ import annotations

from manufacturing.scheduling.v1 import schedule_pb2
from manufacturing.scheduling.v1 import scheduling_service_pb2 as pb

from services.scheduling.convert import problem_from_proto
from tests.scheduling.checker import assert_feasible
from tests.scheduling.test_rpcs import assert_repair, seconds, shop


def listed_ids(stub) -> list[str]:
    ids: list[str] = []
    token = ""
    while True:
        page = stub.ListSchedules(pb.ListSchedulesRequest(page_size=1, page_token=token))
        # Summaries only: nothing placed leaves through List unchecked.
        assert all(not s.operations and not s.HasField("problem") for s in page.schedules)
        ids += [s.id for s in page.schedules]
        token = page.next_page_token
        if not token:
            return ids


def test_every_listed_schedule_read_back_is_feasible(shared_scheduling_stub):
    stub = shared_scheduling_stub
    solved = stub.Solve(
        pb.SolveRequest(
            problem=shop(),
            objective=schedule_pb2.OBJECTIVE_TOTAL_WEIGHTED_TARDINESS,
            time_limit=seconds(1),
        )
    ).schedule
    streamed = list(stub.SolveStream(pb.SolveStreamRequest(problem=shop(), time_limit=seconds(1))))[
        -1
    ].schedule
    down = pb.Disruption(
        machine_down=pb.MachineDown(machine_id="b", window=schedule_pb2.TimeWindow(start=2, end=9))
    )
    repaired = stub.Reschedule(
        pb.RescheduleRequest(
            schedule_id=solved.id, disruptions=[down], current_time=2, time_limit=seconds(1)
        )
    ).schedule
    assert_repair(solved, repaired, 2)
    given = {solved.id: shop(), streamed.id: shop(), repaired.id: repaired.problem}
    assert sorted(listed_ids(stub)) == sorted(given)
    for schedule_id, problem in given.items():
        stored = stub.GetSchedule(pb.GetScheduleRequest(id=schedule_id)).schedule
        assert stored.operations
        assert_feasible(problem_from_proto(problem), stored.operations)
        assert_feasible(problem_from_proto(stored.problem), stored.operations)
