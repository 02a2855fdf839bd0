"""The ``mfg`` command.

Exit codes scripts can rely on: 0 success; 2 bad usage or input file; 3 the service
refused the request (INVALID_ARGUMENT, FAILED_PRECONDITION, ...); 4 not found;
5 not authenticated or not allowed; 6 the suite is unreachable or timed out; 1 other.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TypeVar

import click
import grpc
from google.protobuf import message_factory
from manufacturing.maintenance.v1 import maintenance_service_pb2 as maintenance_pb
from manufacturing.maintenance.v1 import sensor_reading_pb2
from manufacturing.quality.v1 import quality_service_pb2 as quality_pb
from manufacturing.scheduling.v1 import schedule_pb2
from manufacturing.scheduling.v1 import scheduling_service_pb2 as scheduling_pb
from rich.progress import Progress

from manufacturing_sdk import MaintenanceClient, QualityClient, SchedulingClient
from manufacturing_sdk.base import SyncClient
from manufacturing_sdk.cli import io
from manufacturing_sdk.errors import (
    DeadlineExceededError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ServiceError,
    UnauthenticatedError,
    UnavailableError,
)

Client = TypeVar("Client", bound=SyncClient)
EXIT_CODES: list[tuple[type[ServiceError], int]] = [
    (NotFoundError, 4),
    (UnauthenticatedError, 5),
    (PermissionDeniedError, 5),
    (UnavailableError, 6),
    (DeadlineExceededError, 6),
    (InvalidArgumentError, 3),
]
CLIENTS: dict[str, type[SyncClient]] = {
    "scheduling": SchedulingClient,
    "quality": QualityClient,
    "maintenance": MaintenanceClient,
}
INGEST_BATCH = 1000


@dataclass(frozen=True)
class Context:
    target: str
    token: str | None
    api_key: str | None
    timeout_s: float
    json_output: bool

    def client(self, kind: type[Client]) -> Client:
        return kind(self.target, token=self.token, api_key=self.api_key, timeout_s=self.timeout_s)


pass_context = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--target",
    envvar="MFG_TARGET",
    default="localhost:8080",
    show_default=True,
    help="Gateway address.",
)
@click.option("--token", envvar="MFG_TOKEN", help="Bearer token (or set MFG_TOKEN).")
@click.option("--api-key", envvar="MFG_API_KEY", help="Machine API key (or set MFG_API_KEY).")
@click.option(
    "--timeout",
    "timeout_s",
    default=30.0,
    show_default=True,
    help="Deadline of each call, seconds.",
)
@click.option("--json", "json_output", is_flag=True, help="Print replies as JSON.")
@click.pass_context
def cli(
    ctx: click.Context,
    target: str,
    token: str | None,
    api_key: str | None,
    timeout_s: float,
    json_output: bool,
) -> None:
    """Use the manufacturing AI suite from a terminal.

    \b
    Example:
      mfg --target localhost:8080 info
    """
    ctx.obj = Context(target, token, api_key, timeout_s, json_output)


@cli.command()
@pass_context
def info(context: Context) -> None:
    """Version, build and color of every service.

    \b
    Example:
      mfg info --json
    """
    replies = []
    with context.client(SchedulingClient) as scheduling:
        replies.append(scheduling.get_service_info(scheduling_pb.GetServiceInfoRequest()).info)
    with context.client(QualityClient) as quality_client:
        replies.append(quality_client.get_service_info(quality_pb.GetServiceInfoRequest()).info)
    with context.client(MaintenanceClient) as maintenance_client:
        replies.append(
            maintenance_client.get_service_info(maintenance_pb.GetServiceInfoRequest()).info
        )
    if context.json_output:
        for reply in replies:
            io.print_json(reply)
        return
    io.print_table(
        "Services",
        ("service", "version", "revision", "color", "environment"),
        [
            (r.service_name, r.version, r.git_revision, r.color or "-", r.environment)
            for r in replies
        ],
    )


@cli.command()
@click.argument("service", type=click.Choice(sorted(CLIENTS)))
@click.argument("method")
@click.option(
    "--data",
    "-d",
    default="{}",
    show_default=True,
    help="Request as JSON/YAML text, a file, or - for stdin.",
)
@click.option(
    "--max-replies", default=0, help="Stop a response stream after this many replies (0: never)."
)
@pass_context
def call(context: Context, service: str, method: str, data: str, max_replies: int) -> None:
    """Call any method, like grpcurl but with the SDK's deadlines, retries and errors.

    \b
    Example:
      mfg call scheduling ListSchedules -d '{"page_size": 5}'
    """
    kind = CLIENTS[service]
    described = kind.SERVICE.methods_by_name.get(method)
    if described is None:
        names = ", ".join(m.name for m in kind.SERVICE.methods)
        raise click.BadParameter(f"{service} has no method {method}; it has {names}")
    if described.client_streaming:
        raise click.BadParameter(
            "client-streaming methods need their own command (e.g. mfg maintenance ingest)"
        )
    request = io.parse_message(
        io.load_document(data), message_factory.GetMessageClass(described.input_type)
    )
    response = message_factory.GetMessageClass(described.output_type)
    with context.client(kind) as client:
        if described.server_streaming:
            replies = client._stream(method, request, type(request), response, None)
            for reply in islice(replies, max_replies or None):
                io.print_json(reply)
        else:
            io.print_json(client._unary(method, request, response, None))


@cli.group()
def schedule() -> None:
    """Job-shop scheduling."""


@schedule.command()
@click.argument("problem", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--time-limit", type=float, help="Seconds the solver may take.")
@pass_context
def solve(context: Context, problem: str, time_limit: float | None) -> None:
    """Solve a problem given as a JSON/YAML Problem message.

    \b
    Example:
      mfg schedule solve problem.yaml --time-limit 10
    """
    request = scheduling_pb.SolveRequest()
    request.problem.CopyFrom(io.parse_message(io.load_document(problem), type(request.problem)))
    if time_limit is not None:
        request.time_limit.FromNanoseconds(int(time_limit * 1e9))
    with context.client(SchedulingClient) as client:
        reply = client.solve(request, timeout_s=max(context.timeout_s, (time_limit or 0) + 10))
    if context.json_output:
        io.print_json(reply)
        return
    result = reply.schedule
    io.print_table(
        f"Schedule {result.id}: makespan {result.makespan}, "
        f"{schedule_pb2.SolveStatus.Name(result.status).removeprefix('SOLVE_STATUS_').lower()}",
        ("job", "operation", "machine", "start", "end"),
        [(o.job_id, o.operation_id, o.machine_id, o.start, o.end) for o in result.operations],
    )


@cli.group()
def maintenance() -> None:
    """Sensor readings and alerts."""


def _readings(path: Path) -> Iterator[sensor_reading_pb2.SensorReading]:
    for number, row in enumerate(io.csv_rows(path), start=2):
        where = f"{path.name} line {number}"
        try:
            reading = sensor_reading_pb2.SensorReading(
                machine_id=row["machine_id"], sensor=row["sensor"], value=float(row["value"])
            )
        except (KeyError, TypeError, ValueError) as error:
            raise click.BadParameter(
                f"{where}: needs machine_id, sensor, time, value ({error})"
            ) from error
        reading.time.FromDatetime(io.parse_time(row.get("time") or "", where))
        yield reading


def _reading_batches(
    path: Path, progress: Callable[[int], None]
) -> Iterator[maintenance_pb.IngestReadingsRequest]:
    batch = maintenance_pb.IngestReadingsRequest()
    for reading in _readings(path):
        batch.readings.append(reading)
        if len(batch.readings) == INGEST_BATCH:
            progress(INGEST_BATCH)
            yield batch
            batch = maintenance_pb.IngestReadingsRequest()
    if batch.readings:
        progress(len(batch.readings))
        yield batch


@maintenance.command()
@click.argument("readings", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_context
def ingest(context: Context, readings: Path) -> None:
    """Store readings from a CSV file with columns machine_id, sensor, time, value.

    \b
    Example:
      mfg maintenance ingest readings.csv
    """
    # Read the whole file once first: a bad line stops everything before anything is
    # sent (an error raised while gRPC reads the stream would reach us as UNKNOWN).
    for _ in _readings(readings):
        pass
    with (
        Progress(disable=context.json_output) as progress,
        context.client(MaintenanceClient) as client,
    ):
        task = progress.add_task("ingesting", total=None)
        reply = client.ingest_readings(
            _reading_batches(readings, lambda n: progress.advance(task, n)),
            timeout_s=max(context.timeout_s, 600),
        )
    if context.json_output:
        io.print_json(reply)
        return
    io.print_table(
        "Ingestion",
        ("stored", "duplicates", "rejected"),
        [(reply.stored_count, reply.duplicate_count, reply.rejected_count)],
    )


@maintenance.command()
@click.option("--machine", "machines", multiple=True, help="Only this machine (repeatable).")
@click.option(
    "--resume-after", default="", help="Cursor of the last alert seen; 0 for all retained."
)
@click.option("--max-alerts", default=0, help="Stop after this many alerts (0: keep watching).")
@pass_context
def watch(context: Context, machines: tuple[str, ...], resume_after: str, max_alerts: int) -> None:
    """Print alerts as they are raised, one JSON line each.

    \b
    Example:
      mfg maintenance watch --machine press-7 --resume-after 0
    """
    request = maintenance_pb.WatchAlertsRequest(
        machine_ids=list(machines), resume_after=resume_after
    )
    with context.client(MaintenanceClient) as client:
        for reply in islice(client.watch_alerts(request), max_alerts or None):
            io.print_json(reply)


@cli.group()
def quality() -> None:
    """Control charts and inspection."""


@quality.command()
@click.argument("request", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@pass_context
def chart(context: Context, request: str) -> None:
    """Compute a control chart from a JSON/YAML ComputeControlChartRequest.

    \b
    Example:
      mfg quality chart chart.yaml --json
    """
    message = io.parse_message(io.load_document(request), quality_pb.ComputeControlChartRequest)
    with context.client(QualityClient) as client:
        reply = client.compute_control_chart(message)
    if context.json_output:
        io.print_json(reply)
        return
    rows = []
    for series in reply.chart.series:
        limits = series.limits
        flagged = sum(1 for point in series.points if point.out_of_control)
        rows.append(
            (series.statistic, limits.lower_control_limit, limits.center_line,
             limits.upper_control_limit, flagged)
        )  # fmt: skip
    io.print_table("Control chart", ("statistic", "LCL", "CL", "UCL", "out of control"), rows)


def exit_code(error: ServiceError) -> int:
    for kind, code in EXIT_CODES:
        if isinstance(error, kind):
            return code
    return 1 if error.code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN) else 3


def main() -> None:
    """Entry point of the ``mfg`` console script."""
    try:
        cli.main(standalone_mode=False)
    except click.ClickException as error:
        error.show()
        sys.exit(2)
    except click.exceptions.Abort:
        sys.exit(130)
    except ServiceError as error:
        click.echo(f"error: {error}", err=True)
        for field, description in error.field_violations.items():
            click.echo(f"  {field}: {description}", err=True)
        sys.exit(exit_code(error))
