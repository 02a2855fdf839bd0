"""Bounded look-ahead for camera streams.

Pulling an item of an InspectStream starts its inspection on a worker; reading up to
``in_flight`` items ahead of the reply being written keeps every worker busy while
replies still leave in input order, and a fast producer cannot flood memory.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from typing import TypeVar

Item = TypeVar("Item")


def read_ahead(items: Iterable[Item], *, in_flight: int) -> Iterator[Item]:
    """``items`` in order, each pulled from its source up to ``in_flight`` ahead."""
    pending: deque[Item] = deque()
    for item in items:
        pending.append(item)
        if len(pending) >= in_flight:
            yield pending.popleft()
    while pending:
        yield pending.popleft()
