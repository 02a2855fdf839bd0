"""Watch the solver improve a schedule (SolveStream) with the asyncio client.

    python examples/scheduling_async.py [localhost:8080]

CLI: mfg schedule solve examples/problem.yaml --time-limit 5 --stream
"""

from __future__ import annotations

import asyncio
import json
import sys

from manufacturing.scheduling.v1 import scheduling_service_pb2 as pb
from manufacturing_sdk import AsyncSchedulingClient
from scheduling_sync import two_jobs


async def main(target: str) -> None:
    request = pb.SolveStreamRequest(problem=two_jobs())
    request.time_limit.FromSeconds(5)
    improvements: list[dict[str, int]] = []
    stored_id = ""
    async with AsyncSchedulingClient(target) as client:
        async for reply in client.solve_stream(request, timeout_s=30):
            improvements.append(
                {"makespan": reply.schedule.makespan, "lower_bound": reply.lower_bound}
            )
            if reply.final:
                stored_id = reply.schedule.id
    print(json.dumps({"improvements": improvements, "schedule_id": stored_id}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "localhost:8080"))
