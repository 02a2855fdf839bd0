"""``mfg maintenance``: ingest sensor readings, follow alerts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path

import click
from manufacturing.maintenance.v1 import maintenance_service_pb2 as pb
from manufacturing.maintenance.v1 import sensor_reading_pb2
from rich.progress import Progress

from manufacturing_sdk import MaintenanceClient
from manufacturing_sdk.cli import io
from manufacturing_sdk.cli.context import Context, pass_context

INGEST_BATCH = 1000


@click.group()
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
) -> Iterator[pb.IngestReadingsRequest]:
    batch = pb.IngestReadingsRequest()
    for reading in _readings(path):
        batch.readings.append(reading)
        if len(batch.readings) == INGEST_BATCH:
            progress(INGEST_BATCH)
            yield batch
            batch = pb.IngestReadingsRequest()
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
    total = sum(1 for _ in _readings(readings))
    with (
        Progress(disable=context.json_output) as progress,
        context.client(MaintenanceClient) as client,
    ):
        task = progress.add_task("ingesting", total=total)
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
    request = pb.WatchAlertsRequest(machine_ids=list(machines), resume_after=resume_after)
    with context.client(MaintenanceClient) as client:
        for reply in islice(client.watch_alerts(request), max_alerts or None):
            io.print_json_line(reply)
