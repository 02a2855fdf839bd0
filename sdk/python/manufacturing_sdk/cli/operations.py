"""``mfg rollout`` and ``mfg ops``: the operators' commands, run by the suite's own
tools (``rollout``, ``python -m services.ops``) with ``mfg``'s exit codes.

Options not listed in ``--help`` pass through to those tools unchanged; their command
lines are the interface used here, and they are imported only when called.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import click

from manufacturing_sdk.cli.context import Context, pass_context

# Exit codes of mfg (see manufacturing_sdk.cli.main) for the tools' own.
USAGE = 2
REFUSED = 3
WARNED = 7
FAILED = 8
ROLLOUT_CODES = {0: 0, 1: FAILED, 2: REFUSED}  # completed, rolled back, could not start
OPS_CODES = {0: 0, 1: WARNED, 2: FAILED}  # OK, WARN, FAIL
PASS_THROUGH = {"ignore_unknown_options": True}
DATA_DIR = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("var"),
    show_default=True,
    help="Data directory of the local suite (make up) and of the rollout history.",
)
PLATFORM = click.option(
    "--platform", help="Where the suite runs: local or kubernetes (default $ROLLOUT_PLATFORM)."
)
NAMESPACE = click.option(
    "--namespace", help="Kubernetes namespace of the suite (default $ROLLOUT_NAMESPACE)."
)


def _rollout(argv: Sequence[str]) -> None:
    from services.rollout.cli import main

    _delegate(main, argv, ROLLOUT_CODES)


def _ops(argv: Sequence[str]) -> None:
    from services.ops.__main__ import main

    _delegate(main, argv, OPS_CODES)


def _delegate(
    tool: Callable[[list[str] | None], int], argv: Sequence[str], codes: dict[int, int]
) -> None:
    try:
        code = tool(list(argv))
    except SystemExit as stop:  # the tool's argument parser refused (message printed)
        raise click.exceptions.Exit(USAGE if stop.code else 0) from None
    raise click.exceptions.Exit(codes.get(code, 1))


def _json(context: Context) -> list[str]:
    return ["--json"] if context.json_output else []


def _where(platform: str | None, namespace: str | None) -> list[str]:
    """The platform options given; those left out keep the tool's defaults (environment)."""
    given = (("--platform", platform), ("--namespace", namespace))
    return [part for option, value in given if value is not None for part in (option, value)]


@click.group()
def rollout() -> None:
    """Blue-green and canary rollouts through the gateway."""


@rollout.command()
@DATA_DIR
@PLATFORM
@NAMESPACE
@pass_context
def status(context: Context, data_dir: Path, platform: str | None, namespace: str | None) -> None:
    """Per service and color: version, traffic weight, processes (pods), health.

    \b
    Example:
      mfg --json rollout status --data-dir var
      mfg rollout status --platform kubernetes --namespace manufacturing-ai
    """
    argv = ["status", "--data-dir", str(data_dir), *_where(platform, namespace)]
    _rollout([*argv, *_json(context)])


@rollout.command()
@DATA_DIR
@PLATFORM
@NAMESPACE
@click.option("--limit", default=20, show_default=True, help="Most recent rollouts to show.")
@pass_context
def history(
    context: Context, data_dir: Path, platform: str | None, namespace: str | None, limit: int
) -> None:
    """Past rollouts with their outcome and reason, oldest first.

    \b
    Example:
      mfg rollout history --limit 5
    """
    argv = ["history", "--data-dir", str(data_dir), *_where(platform, namespace)]
    _rollout([*argv, "--limit", str(limit), *_json(context)])


@rollout.command(context_settings=PASS_THROUGH)
@click.argument("service")
@click.option("--version", required=True, help="Version to roll out.")
@click.option("--strategy", required=True, help="blue-green or canary.")
@click.option("--steps", help="Canary traffic percentages, e.g. 10,50,100.")
@DATA_DIR
@click.argument("options", nargs=-1, type=click.UNPROCESSED)
@pass_context
def start(
    context: Context,
    service: str,
    version: str,
    strategy: str,
    steps: str | None,
    data_dir: Path,
    options: tuple[str, ...],
) -> None:
    """Move SERVICE to a version: start the idle color, check it, shift traffic, stop
    the old color; roll back at the first failed check. Exit 0 when completed, 8 when
    rolled back, 3 when it could not start. More options (--platform, --namespace,
    --image, --source, --step-seconds, --max-error-rate, ...): see `rollout --help`.

    \b
    Example:
      mfg rollout start quality --version 1.4.0 --strategy canary --steps 10,50,100
    """
    argv = [service, "--version", version, "--strategy", strategy, "--data-dir", str(data_dir)]
    argv += ["--steps", steps] if steps else []
    _rollout([*argv, *options, *_json(context)])


@click.group()
def ops() -> None:
    """Operator checks."""


@ops.command(context_settings=PASS_THROUGH)
@click.option("--daily", "period", flag_value="daily", help="Health, versions, resources, alerts.")
@click.option("--weekly", "period", flag_value="weekly", help="Trends, logs, CVEs, backups.")
@click.argument("options", nargs=-1, type=click.UNPROCESSED)
@pass_context
def check(context: Context, period: str | None, options: tuple[str, ...]) -> None:
    """The operator's daily or weekly check of the suite behind --target. Exit 0 all OK,
    7 warnings, 8 a failure. More options (--service NAME=HOST:PORT, --admin,
    --data-dir, ...): see `python -m services.ops check --help`.

    \b
    Example:
      mfg --json ops check --daily --service quality=127.0.0.1:50052
    """
    if period is None:
        raise click.UsageError("choose --daily or --weekly")
    gateway = (
        [] if any(o.startswith("--gateway") for o in options) else ["--gateway", context.target]
    )
    argv = ["check", f"--{period}", *gateway, *options, *_json(context)]
    _ops(argv)
