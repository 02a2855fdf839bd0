"""Inspect part images concurrently with the asyncio client.

    python examples/quality_async.py localhost:8080 part-1.png part-2.png ...

CLI: mfg quality inspect examples/part.png --overlay overlay.png
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from manufacturing.quality.v1 import inspection_pb2
from manufacturing.quality.v1 import quality_service_pb2 as pb
from manufacturing_sdk import AsyncQualityClient


async def inspect_all(target: str, images: list[Path], model: str) -> dict[str, str]:
    """Verdict per image name; the calls run concurrently on one channel."""
    async with AsyncQualityClient(target) as client:
        replies = await asyncio.gather(
            *(client.inspect(pb.InspectRequest(image=p.read_bytes(), model=model)) for p in images)
        )
    return {
        path.name: inspection_pb2.Verdict.Name(reply.result.verdict)
        for path, reply in zip(images, replies, strict=True)
    }


if __name__ == "__main__":
    target, *paths = sys.argv[1:] or ["localhost:8080"]
    verdicts = asyncio.run(inspect_all(target, [Path(p) for p in paths], "neu-surface"))
    print(json.dumps(verdicts))
