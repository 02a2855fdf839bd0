"""Planned maintenance and machine risk from the maintenance service, as unavailability.

One deadline covers the whole exchange: GetMachineHealth for every machine of the problem
at once (machines the maintenance service does not know are skipped), then
PlanMaintenance for the machines it knows, from the problem's "now" on (time 0 when
solving, the current time when rescheduling: maintenance is not planned in the past).
Any other failure, a timeout included, means maintenance did not answer: the problem is
solved without it and the reply warns.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import grpc
from google.protobuf import duration_pb2
from manufacturing.maintenance.v1 import maintenance_service_pb2 as maintenance_pb
from manufacturing.maintenance.v1 import maintenance_service_pb2_grpc
from manufacturing.scheduling.v1 import scheduling_service_pb2 as pb

from services.runtime.errors import Violations
from services.scheduling.domain.model import Interval, Problem
from services.scheduling.domain.reschedule import MachineDown
from services.scheduling.domain.validation import MAX_TIME

DEFAULT_UNIT = timedelta(minutes=1)
DEFAULT_WINDOW = timedelta(hours=8)
DEFAULT_CYCLE = timedelta(hours=1)
DEFAULT_RISK_THRESHOLD = 0.9
# The longest plan the maintenance service makes.
MAX_PLAN = timedelta(days=365)
# Answers that concern one machine only: the maintenance service does not know it.
UNKNOWN_MACHINE = frozenset(
    {
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
    }
)
# Caller credentials passed on, so maintenance authorises the planner who asked.
FORWARDED_HEADERS = ("authorization", "x-api-key")

Metadata = tuple[tuple[str, str | bytes], ...]


@dataclass(frozen=True)
class Awareness:
    """How the problem's time units map to wall time, and what counts as high risk."""

    start: datetime
    unit: timedelta = DEFAULT_UNIT
    risk_threshold: float = DEFAULT_RISK_THRESHOLD
    window: timedelta = DEFAULT_WINDOW
    cycle: timedelta = DEFAULT_CYCLE
    # The problem time that is now: nothing is planned or made unavailable before it.
    now_at: int = 0

    def units(self, moment: datetime) -> float:
        return (moment - self.start) / self.unit

    @property
    def now(self) -> datetime:
        """The wall time of ``now_at``."""
        return self.start + self.unit * self.now_at


@dataclass(frozen=True)
class Outlook:
    """Unavailability per machine (time units), remarks on it, and a warning if any."""

    unavailable: Mapping[str, tuple[Interval, ...]]
    notes: tuple[str, ...] = ()
    warning: str = ""

    @property
    def warnings(self) -> tuple[str, ...]:
        return (self.warning,) if self.warning else ()


def awareness_from_proto(
    message: pb.MaintenanceAwareness,
    now: datetime,
    violations: Violations,
    path: str,
    now_at: int = 0,
) -> Awareness:
    """The request's option with its defaults; bad fields are added to ``violations``.

    ``now_at`` is the problem time that is ``now``: an unset start time puts time 0 that
    many units before ``now``.
    """
    given = {field.name: value for field, value in message.ListFields()}

    def span(name: str, default: timedelta, longest: timedelta) -> timedelta:
        if name not in given:
            return default
        value: timedelta = given[name].ToTimedelta()
        violations.check(
            timedelta(0) < value <= longest,
            f"{path}.{name}",
            f"must be more than 0 and at most {longest}",
        )
        return value

    violations.check(
        0 <= message.risk_threshold <= 1, f"{path}.risk_threshold", "must be between 0 and 1"
    )
    unit = span("time_unit", DEFAULT_UNIT, timedelta(days=1))
    awareness = Awareness(
        start=message.start_time.ToDatetime(UTC) if message.HasField("start_time") else now,
        unit=unit,
        risk_threshold=message.risk_threshold or DEFAULT_RISK_THRESHOLD,
        window=span("window_duration", DEFAULT_WINDOW, timedelta(days=7)),
        cycle=span("cycle_duration", DEFAULT_CYCLE, timedelta(days=1)),
    )
    if not now_at:
        return awareness
    try:
        start = awareness.start if message.HasField("start_time") else now - unit * now_at
        later = replace(awareness, start=start, now_at=now_at)
        # Maintenance is planned from the wall time of now: it must be a date.
        _ = later.now
    except OverflowError:
        violations.add(
            path, f"puts the current time {now_at} outside the calendar (years 1 to 9999)"
        )
        return awareness
    return later


class MaintenanceAdvisor:
    """Asks the maintenance service over ``channel``, waiting at most ``timeout_s``."""

    def __init__(self, channel: grpc.Channel, timeout_s: float) -> None:
        self._stub = maintenance_service_pb2_grpc.MaintenanceServiceStub(channel)
        self._timeout_s = timeout_s

    def outlook(
        self,
        machine_ids: Sequence[str],
        awareness: Awareness,
        horizon: int,
        *,
        within_s: float,
        metadata: Metadata = (),
    ) -> Outlook:
        """Unavailability over ``horizon`` time units, found within ``within_s`` at most."""
        deadline = time.monotonic() + min(self._timeout_s, within_s)
        try:
            risks = self._risks(machine_ids, deadline, metadata)
            windows = self._plan(sorted(risks), awareness, horizon, deadline, metadata)
        except grpc.RpcError as error:
            code = error.code()
            return Outlook(
                {},
                warning=(
                    f"the maintenance service did not answer ({code.name}): scheduled "
                    "without its planned downtime and machine risk"
                ),
            )
        return _as_unavailability(risks, windows, awareness, horizon)

    def _risks(
        self, machine_ids: Sequence[str], deadline: float, metadata: Metadata
    ) -> dict[str, float]:
        calls = {
            machine: self._stub.GetMachineHealth.future(
                maintenance_pb.GetMachineHealthRequest(machine_id=machine),
                timeout=max(0.0, deadline - time.monotonic()),
                metadata=metadata,
            )
            for machine in machine_ids
        }
        risks = {}
        try:
            for machine, call in calls.items():
                try:
                    risks[machine] = call.result().risk
                except grpc.RpcError as error:
                    if error.code() not in UNKNOWN_MACHINE:
                        raise
        finally:
            for call in calls.values():
                call.cancel()  # type: ignore[no-untyped-call]
        return risks

    def _plan(
        self,
        machine_ids: Sequence[str],
        awareness: Awareness,
        horizon: int,
        deadline: float,
        metadata: Metadata,
    ) -> list[maintenance_pb.MaintenanceWindow]:
        if not machine_ids:
            return []
        request = maintenance_pb.PlanMaintenanceRequest(
            machine_ids=machine_ids,
            horizon=_duration(_plan_length(horizon, awareness)),
            cycle_duration=_duration(awareness.cycle),
            window_duration=_duration(awareness.window),
        )
        request.start_time.FromDatetime(awareness.now)
        reply = self._stub.PlanMaintenance(
            request, timeout=max(0.0, deadline - time.monotonic()), metadata=metadata
        )
        return list(reply.windows)


def _plan_length(horizon: int, awareness: Awareness) -> timedelta:
    """The schedule's horizon from now in wall time plus one window (one that starts
    before the schedule can end still matters), at most what maintenance plans."""
    ahead = max(0, horizon - awareness.now_at)
    seconds = ahead * awareness.unit.total_seconds() + awareness.window.total_seconds()
    return timedelta(seconds=min(seconds, MAX_PLAN.total_seconds()))


def _as_unavailability(
    risks: Mapping[str, float],
    windows: Sequence[maintenance_pb.MaintenanceWindow],
    awareness: Awareness,
    horizon: int,
) -> Outlook:
    unavailable: dict[str, list[Interval]] = {}
    notes = []
    planned_end: dict[str, int] = {}
    for window in windows:
        start = max(
            awareness.now_at, math.floor(awareness.units(window.start_time.ToDatetime(UTC)))
        )
        end = min(MAX_TIME, math.ceil(awareness.units(window.end_time.ToDatetime(UTC))))
        if end <= start:
            continue  # over before now
        unavailable.setdefault(window.machine_id, []).append(Interval(start, end))
        planned_end[window.machine_id] = max(planned_end.get(window.machine_id, 0), end)
        notes.append(f"maintenance planned on {window.machine_id} over [{start}, {end})")
    for machine, risk in sorted(risks.items()):
        if risk < awareness.risk_threshold:
            continue
        since = awareness.now_at
        until = min(MAX_TIME, planned_end.get(machine, horizon))
        if until > since:
            unavailable.setdefault(machine, []).append(Interval(since, until))
        notes.append(f"{machine} at risk {risk:.2f}: unavailable over [{since}, {until})")
    return Outlook({m: tuple(spans) for m, spans in unavailable.items()}, tuple(notes))


def with_unavailability(
    problem: Problem, unavailable: Mapping[str, tuple[Interval, ...]]
) -> Problem:
    """``problem`` with more unavailable windows (they may overlap those it has)."""
    if not unavailable:
        return problem
    machines = tuple(
        replace(m, unavailable=(*m.unavailable, *unavailable.get(m.id, ())))
        for m in problem.machines
    )
    return replace(problem, machines=machines)


def as_machines_down(unavailable: Mapping[str, tuple[Interval, ...]]) -> list[MachineDown]:
    """The unavailability as disruptions of a repair, which keeps started operations put."""
    return [
        MachineDown(machine, window)
        for machine, windows in unavailable.items()
        for window in windows
    ]


def forwarded_credentials(metadata: Sequence[tuple[str, str | bytes]]) -> Metadata:
    return tuple((k, v) for k, v in metadata if k in FORWARDED_HEADERS)


def _duration(span: timedelta) -> duration_pb2.Duration:
    message = duration_pb2.Duration()
    message.FromTimedelta(span)
    return message
