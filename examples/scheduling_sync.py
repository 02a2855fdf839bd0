"""Solve a small job-shop problem, then read the stored schedule back by its id.

    python examples/scheduling_sync.py [localhost:8080]

CLI: mfg schedule solve examples/problem.yaml --time-limit 5 --gantt plan.png
"""

from __future__ import annotations

import json
import sys

from manufacturing.scheduling.v1 import schedule_pb2
from manufacturing.scheduling.v1 import scheduling_service_pb2 as pb
from manufacturing_sdk import InvalidArgumentError, SchedulingClient


def two_jobs() -> schedule_pb2.Problem:
    """A shaft (lathe 3, then mill 2) and a flange (mill 4, then lathe 3)."""

    def step(machine: str, duration: int) -> schedule_pb2.Operation:
        eligible = schedule_pb2.EligibleMachine(machine_id=machine, duration=duration)
        return schedule_pb2.Operation(eligible_machines=[eligible])

    return schedule_pb2.Problem(
        machines=[schedule_pb2.Machine(id="lathe"), schedule_pb2.Machine(id="mill")],
        jobs=[
            schedule_pb2.Job(id="shaft", operations=[step("lathe", 3), step("mill", 2)]),
            schedule_pb2.Job(id="flange", operations=[step("mill", 4), step("lathe", 3)]),
        ],
    )


def main(target: str) -> None:
    request = pb.SolveRequest(problem=two_jobs())
    request.time_limit.FromSeconds(5)
    refused: list[str] = []
    with SchedulingClient(target) as client:
        solved = client.solve(request).schedule
        stored = client.get_schedule(pb.GetScheduleRequest(id=solved.id)).schedule
        try:  # a malformed problem is refused with the offending fields named
            client.solve(pb.SolveRequest(problem=schedule_pb2.Problem()))
        except InvalidArgumentError as error:
            refused = sorted(error.field_violations)
    print(
        json.dumps(
            {
                "schedule_id": stored.id,
                "makespan": stored.makespan,
                "operations": [
                    [op.job_id, op.machine_id, op.start, op.end] for op in stored.operations
                ],
                "refused_fields": refused,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "localhost:8080")
