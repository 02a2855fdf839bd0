"""Maintenance windows from remaining-life estimates.

Each machine is due when the lower end of its RUL interval runs out (cycles times the
wall time of one cycle). Machines are served most urgent first (earliest due time,
then highest risk); each gets the earliest window that keeps at most ``max_parallel``
machines down at once and starts no later than its due time when that is possible,
else as soon as capacity allows (then the reason says it is late). A machine whose due
time lies beyond horizon plus one window needs no window in this horizon.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class MachineOutlook:
    machine_id: str
    rul_lower_cycles: float
    risk: float


@dataclass(frozen=True)
class Window:
    machine_id: str
    start: datetime
    end: datetime
    due: datetime
    risk: float
    reason: str


def plan_windows(
    outlooks: Sequence[MachineOutlook],
    *,
    start: datetime,
    horizon: timedelta,
    cycle: timedelta,
    window: timedelta,
    max_parallel: int,
) -> tuple[list[Window], list[str]]:
    """Windows inside [start, start + horizon), and the machines left without one."""
    end_of_plan = start + horizon
    due = {o.machine_id: start + cycle * o.rul_lower_cycles for o in outlooks}
    ordered = sorted(outlooks, key=lambda o: (due[o.machine_id], -o.risk, o.machine_id))
    busy: list[tuple[datetime, datetime]] = []
    windows: list[Window] = []
    unplanned: list[str] = []
    for outlook in ordered:
        due_time = due[outlook.machine_id]
        if due_time >= end_of_plan:
            unplanned.append(f"{outlook.machine_id}: due {due_time.isoformat()}, after the horizon")
            continue
        # Latest start that still finishes before the due time, but not before now.
        wanted = max(start, due_time - window)
        slot = _first_free(busy, wanted, window, max_parallel, start)
        if slot + window > end_of_plan:
            unplanned.append(f"{outlook.machine_id}: no capacity left in the horizon")
            continue
        busy.append((slot, slot + window))
        late = slot > due_time - window
        reason = (
            f"RUL lower bound {outlook.rul_lower_cycles:.0f} cycles; due {due_time.isoformat()}"
            + ("; capacity forces a late window" if late and slot > start else "")
            + ("; overdue" if due_time <= start else "")
        )
        windows.append(
            Window(outlook.machine_id, slot, slot + window, due_time, outlook.risk, reason)
        )
    windows.sort(key=lambda w: (w.start, w.machine_id))
    return windows, unplanned


def _overlaps(busy: Sequence[tuple[datetime, datetime]], at: datetime, length: timedelta) -> int:
    return sum(1 for begin, end in busy if begin < at + length and at < end)


def _first_free(
    busy: Sequence[tuple[datetime, datetime]],
    wanted: datetime,
    length: timedelta,
    max_parallel: int,
    earliest: datetime,
) -> datetime:
    """The latest start at or before ``wanted`` with capacity, else the first one after."""
    candidates = sorted({wanted, *(end for _, end in busy), *(b - length for b, _ in busy)})
    before = [c for c in candidates if earliest <= c <= wanted]
    for at in sorted(before, reverse=True):
        if _overlaps(busy, at, length) < max_parallel:
            return at
    for at in sorted(c for c in candidates if c > wanted):
        if _overlaps(busy, at, length) < max_parallel:
            return at
    return max(wanted, max((end for _, end in busy), default=wanted))
