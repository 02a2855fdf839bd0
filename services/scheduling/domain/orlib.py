"""Reading job-shop instances in the OR-Library text format.

Lines starting with ``#`` are comments; the first line of numbers is
``jobs machines``; then one line per job of ``machine duration`` pairs in processing
order, machines numbered from 0.

Durations may be zero (orb07 has one zero-length operation). They are kept as written:
the published best-known makespans are for the instances exactly as they are, and the
domain solver places a zero-length operation without taking machine time. The service's
contract refuses zero durations (an operation that takes no time is a data error in a
plant), so such an instance is solved here, through the domain, not through Solve.
"""

from __future__ import annotations

from services.scheduling.domain.model import EligibleMachine, Job, Machine, Operation, Problem


class FormatError(ValueError):
    """The text is not a well-formed OR-Library instance; the message says where."""


def parse_orlib(text: str) -> Problem:
    rows = [
        (number, line.split())
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not rows:
        raise FormatError("no header line: expected 'jobs machines'")
    header_line, header = rows[0]
    try:
        jobs, machines = (int(v) for v in header)
    except ValueError as error:
        raise FormatError(f"line {header_line}: expected 'jobs machines'") from error
    if jobs < 1 or machines < 1:
        raise FormatError(f"line {header_line}: jobs and machines must be positive")
    if len(rows) - 1 != jobs:
        raise FormatError(f"expected {jobs} job lines, found {len(rows) - 1}")
    return Problem(
        machines=tuple(Machine(f"m{m}") for m in range(machines)),
        jobs=tuple(
            _job(index, line_number, fields, machines)
            for index, (line_number, fields) in enumerate(rows[1:])
        ),
    )


def _job(index: int, line_number: int, fields: list[str], machines: int) -> Job:
    try:
        numbers = [int(v) for v in fields]
    except ValueError as error:
        raise FormatError(f"line {line_number}: expected integers") from error
    if len(numbers) % 2 or not numbers:
        raise FormatError(f"line {line_number}: expected 'machine duration' pairs")
    operations = []
    for position in range(0, len(numbers), 2):
        machine, duration = numbers[position], numbers[position + 1]
        if not 0 <= machine < machines:
            raise FormatError(f"line {line_number}: machine {machine} out of range")
        if duration < 0:
            raise FormatError(f"line {line_number}: negative duration {duration}")
        operations.append(
            Operation(str(position // 2), (EligibleMachine(f"m{machine}", duration),))
        )
    return Job(f"j{index}", tuple(operations))
