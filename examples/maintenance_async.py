"""Ingest readings of several machines at once, then read each one's latest values,
with the asyncio client.

    python examples/maintenance_async.py [localhost:8080] [machine id ...]

CLI: mfg call maintenance GetLatestReadings -d '{"machine_id": "press-7"}'
"""

from __future__ import annotations

import asyncio
import json
import sys

from maintenance_sync import temperatures
from manufacturing.maintenance.v1 import maintenance_service_pb2 as pb
from manufacturing_sdk import AsyncMaintenanceClient


async def main(target: str, machines: list[str]) -> None:
    async with AsyncMaintenanceClient(target) as client:
        ingested = await asyncio.gather(
            *(client.ingest_readings([temperatures(m, [50.0, 52.5, 55.0])]) for m in machines)
        )
        latest = await asyncio.gather(
            *(
                client.get_latest_readings(pb.GetLatestReadingsRequest(machine_id=m))
                for m in machines
            )
        )
    print(
        json.dumps(
            {
                "stored": sum(reply.stored_count for reply in ingested),
                "latest": {
                    m: {r.sensor: r.value for r in reply.readings}
                    for m, reply in zip(machines, latest, strict=True)
                },
            }
        )
    )


if __name__ == "__main__":
    target, *machines = sys.argv[1:] or ["localhost:8080"]
    asyncio.run(main(target, machines or ["press-7", "press-8", "lathe-2"]))
