"""Durations a request leaves out, filled in with the learned duration model.

An eligible machine whose duration is 0 (unset), on an operation that describes its work
(product, quantity, shift), gets the model's estimate for that work on that machine,
rounded to whole time units and at least 1. A duration left out on an operation without
a work description stays 0, and problem validation refuses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from manufacturing.scheduling.v1 import schedule_pb2

from services.runtime.errors import Unavailable, Violations
from services.runtime.models import ServedModel
from services.scheduling.domain.durations import DurationModel, OperationRecord
from services.scheduling.domain.model import EligibleMachine, Job
from services.scheduling.domain.validation import MAX_DURATION, MAX_OPERATIONS

MAX_QUANTITY = 1_000_000
MAX_TEXT = 128


@dataclass(frozen=True)
class Estimate:
    job_id: str
    operation_id: str
    machine_id: str
    duration: int
    model_version: str


def check_record(
    record: OperationRecord,
    path: str,
    violations: Violations,
    names: tuple[str, ...] = ("product", "machine_id", "shift"),
) -> bool:
    """Add a violation for each field of a duration query the model cannot take."""
    ok = True
    for name in names:
        ok &= violations.check(
            0 < len(getattr(record, name)) <= MAX_TEXT,
            f"{path}.{name}",
            f"must be 1 to {MAX_TEXT} characters",
        )
    ok &= violations.check(
        0 < record.quantity <= MAX_QUANTITY,
        f"{path}.quantity",
        f"must be between 1 and {MAX_QUANTITY}",
    )
    return ok


def fill_durations(
    jobs: Sequence[Job],
    messages: Sequence[schedule_pb2.Job],
    job_paths: Sequence[str],
    model: ServedModel[tuple[str, DurationModel]],
    violations: Violations,
) -> tuple[tuple[Job, ...], tuple[Estimate, ...]]:
    """``jobs`` (read from ``messages``, at ``job_paths``) with left-out durations estimated.

    Malformed work descriptions are added to ``violations`` and nothing is estimated;
    Unavailable is raised when durations need estimating and the model is not serving.
    """
    if sum(len(job.operations) for job in jobs) > MAX_OPERATIONS:
        return tuple(jobs), ()  # validation refuses the problem's size
    # (job, operation, eligible machine) of each duration to estimate, and its query.
    missing: list[tuple[int, int, int, OperationRecord]] = []
    well_formed = True
    for j, (job, message) in enumerate(zip(jobs, messages, strict=True)):
        for o, (operation, operation_message) in enumerate(
            zip(job.operations, message.operations, strict=True)
        ):
            if not operation_message.HasField("work"):
                continue
            work = operation_message.work
            record = OperationRecord(work.product, "", work.quantity, work.shift)
            well_formed &= check_record(
                record,
                f"{job_paths[j]}.operations[{o}].work",
                violations,
                names=("product", "shift"),
            )
            missing.extend(
                (j, o, e, replace(record, machine_id=eligible.machine_id))
                for e, eligible in enumerate(operation.eligible_machines)
                if eligible.duration == 0
            )
    if not missing or not well_formed:
        return tuple(jobs), ()
    try:
        version, duration_model = model.get()
    except Unavailable as error:
        j, o, e, _ = missing[0]
        raise Unavailable(
            f"{len(missing)} duration(s) left out (the first at "
            f"{job_paths[j]}.operations[{o}].eligible_machines[{e}].duration) need the "
            f"duration model to estimate them: {error}; give them in the request or retry "
            "later"
        ) from error
    predicted = duration_model.predict([query for *_, query in missing])
    filled = [list(job.operations) for job in jobs]
    estimates = []
    for (j, o, e, query), minutes in zip(missing, predicted, strict=True):
        duration = min(MAX_DURATION, max(1, round(minutes)))
        operation = filled[j][o]
        eligible = list(operation.eligible_machines)
        eligible[e] = EligibleMachine(query.machine_id, duration)
        filled[j][o] = replace(operation, eligible_machines=tuple(eligible))
        estimates.append(Estimate(jobs[j].id, operation.id, query.machine_id, duration, version))
    return (
        tuple(replace(job, operations=tuple(ops)) for job, ops in zip(jobs, filled, strict=True)),
        tuple(estimates),
    )
