"""The ``mfg`` command.

Exit codes scripts can rely on: 0 success; 2 bad usage or input file; 3 the service
refused the request (INVALID_ARGUMENT, FAILED_PRECONDITION, ...); 4 not found;
5 not authenticated or not allowed; 6 the suite is unreachable or timed out; 7 a check
found warnings; 8 a check failed or a rollout was rolled back; 1 other.
"""

from __future__ import annotations

import sys
from itertools import islice

import click
import grpc
from google.protobuf import message_factory
from manufacturing.maintenance.v1 import maintenance_service_pb2 as maintenance_pb
from manufacturing.quality.v1 import quality_service_pb2 as quality_pb
from manufacturing.scheduling.v1 import scheduling_service_pb2 as scheduling_pb

from manufacturing_sdk import MaintenanceClient, QualityClient, SchedulingClient
from manufacturing_sdk.base import SyncClient
from manufacturing_sdk.cli import io
from manufacturing_sdk.cli.context import Context, pass_context
from manufacturing_sdk.cli.maintenance import maintenance
from manufacturing_sdk.cli.operations import ops, rollout
from manufacturing_sdk.cli.quality import quality
from manufacturing_sdk.cli.schedule import schedule
from manufacturing_sdk.errors import (
    DeadlineExceededError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ServiceError,
    UnauthenticatedError,
    UnavailableError,
)

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
                io.print_json_line(reply)
        else:
            io.print_json(client._unary(method, request, response, None))


for group in (schedule, quality, maintenance, rollout, ops):
    cli.add_command(group)


def exit_code(error: ServiceError) -> int:
    for kind, code in EXIT_CODES:
        if isinstance(error, kind):
            return code
    return 1 if error.code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN) else 3


def main() -> None:
    """Entry point of the ``mfg`` console script."""
    try:
        code = cli.main(standalone_mode=False)
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
    sys.exit(code if isinstance(code, int) else 0)
