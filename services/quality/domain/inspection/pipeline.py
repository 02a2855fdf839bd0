"""Ordered, bounded parallel inspection for camera streams.

OpenCV and numpy release the GIL in their heavy loops, so a few worker threads keep
more than one core busy; results still come back in input order, and at most
``in_flight`` images are held at once, so a fast producer cannot flood memory.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


def ordered_map(
    work: Callable[[In], Out],
    items: Iterable[In],
    executor: ThreadPoolExecutor,
    *,
    in_flight: int,
) -> Iterator[Out]:
    """``work`` applied to each item, results yielded in input order."""
    pending: deque[Future[Out]] = deque()
    for item in items:
        pending.append(executor.submit(work, item))
        if len(pending) >= in_flight:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()
