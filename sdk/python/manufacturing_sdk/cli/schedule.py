"""``mfg schedule``: solve job-shop problems, at once or watching the search improve."""

from __future__ import annotations

from pathlib import Path

import click
from manufacturing.scheduling.v1 import schedule_pb2
from manufacturing.scheduling.v1 import scheduling_service_pb2 as pb
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from manufacturing_sdk import SchedulingClient
from manufacturing_sdk.cli import io
from manufacturing_sdk.cli.context import Context, pass_context

# The service may take the whole time limit, then store and send the schedule.
DEADLINE_MARGIN_S = 10


@click.group()
def schedule() -> None:
    """Job-shop scheduling."""


@schedule.command()
@click.argument("problem", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--time-limit", type=float, help="Seconds the solver may take.")
@click.option(
    "--stream",
    is_flag=True,
    help="Show each improving schedule as the search finds it (SolveStream).",
)
@click.option(
    "--gantt",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Also draw the schedule as a Gantt chart (.png or .svg).",
)
@pass_context
def solve(
    context: Context, problem: str, time_limit: float | None, stream: bool, gantt: Path | None
) -> None:
    """Solve a problem given as a JSON/YAML Problem message.

    \b
    Example:
      mfg schedule solve problem.yaml --time-limit 10 --stream --gantt plan.png
    """
    parsed = io.parse_message(io.load_document(problem), schedule_pb2.Problem)
    deadline = max(context.timeout_s, (time_limit or 0) + DEADLINE_MARGIN_S)
    with context.client(SchedulingClient) as client:
        if stream:
            result = _solve_streaming(context, client, parsed, time_limit, deadline)
        else:
            request = pb.SolveRequest(problem=parsed)
            if time_limit is not None:
                request.time_limit.FromNanoseconds(int(time_limit * 1e9))
            reply = client.solve(request, timeout_s=deadline)
            if context.json_output:
                io.print_json(reply)
            result = reply.schedule
    if gantt is not None:
        from manufacturing_sdk.cli.pictures import write_gantt

        write_gantt(result, gantt)
    if not context.json_output:
        _print_schedule(result)


def _solve_streaming(
    context: Context,
    client: SchedulingClient,
    problem: schedule_pb2.Problem,
    time_limit: float | None,
    deadline: float,
) -> schedule_pb2.Schedule:
    """The stored schedule; meanwhile a bar of lower bound over makespan (full once the
    schedule is proven optimal), or with --json one line per improving schedule."""
    request = pb.SolveStreamRequest(problem=problem)
    if time_limit is not None:
        request.time_limit.FromNanoseconds(int(time_limit * 1e9))
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[found]}"),
        TimeElapsedColumn(),
    )
    final = schedule_pb2.Schedule()
    with Progress(*columns, disable=context.json_output) as progress:
        task = progress.add_task("solving", total=None, found="")
        for reply in client.solve_stream(request, timeout_s=deadline):
            if context.json_output:
                io.print_json_line(reply)
            progress.update(
                task,
                total=reply.schedule.makespan,
                completed=reply.lower_bound,
                description="solved" if reply.final else "improving",
                found=f"makespan {reply.schedule.makespan}, lower bound {reply.lower_bound}",
            )
            if reply.final:
                final = reply.schedule
    if not final.id:  # the service ends every stream with the stored schedule
        click.echo("error: the stream ended without the stored schedule", err=True)
        raise click.exceptions.Exit(1)
    return final


def _print_schedule(result: schedule_pb2.Schedule) -> None:
    status = schedule_pb2.SolveStatus.Name(result.status).removeprefix("SOLVE_STATUS_").lower()
    io.print_table(
        f"Schedule {result.id}: makespan {result.makespan}, {status}",
        ("job", "operation", "machine", "start", "end"),
        [(o.job_id, o.operation_id, o.machine_id, o.start, o.end) for o in result.operations],
    )
