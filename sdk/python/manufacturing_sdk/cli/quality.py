"""``mfg quality``: control charts, inspection of parts, training inspection models."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import click
from google.protobuf.descriptor import EnumDescriptor
from manufacturing.quality.v1 import control_chart_pb2, inspection_pb2
from manufacturing.quality.v1 import quality_service_pb2 as pb
from rich.progress import Progress

from manufacturing_sdk import QualityClient
from manufacturing_sdk.cli import io
from manufacturing_sdk.cli.context import Context, pass_context

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp"})
# Training reads every image, then fits and evaluates the model before it answers.
TRAIN_DEADLINE_S = 1800


def _choices(enum: EnumDescriptor, prefix: str) -> list[str]:
    """Option values for a proto enum: its names without prefix, lower case, unset left out."""
    return sorted(value.name.removeprefix(prefix).lower() for value in enum.values if value.number)


PNG = click.Path(dir_okay=False, writable=True, path_type=Path)


@click.group()
def quality() -> None:
    """Control charts, inspection and inspection models."""


@quality.command()
@click.argument("source")
@click.option(
    "--type",
    "chart_type",
    type=click.Choice(_choices(control_chart_pb2.ChartType.DESCRIPTOR, "CHART_TYPE_")),
    help="Chart type (default for a characteristic: xbar_r).",
)
@click.option(
    "--rules",
    type=click.Choice(_choices(control_chart_pb2.RuleSet.DESCRIPTOR, "RULE_SET_")),
    help="Run rules to apply (default: points beyond the limits only).",
)
@click.option("--png", type=PNG, help="Also draw the chart: one panel per statistic.")
@pass_context
def chart(
    context: Context, source: str, chart_type: str | None, rules: str | None, png: Path | None
) -> None:
    """Compute a control chart of a stored CHARACTERISTIC, or from a JSON/YAML
    ComputeControlChartRequest file (- for stdin).

    \b
    Examples:
      mfg quality chart line-3/ring/diameter --type xbar_r --rules nelson --png chart.png
      mfg quality chart chart.yaml --json
    """
    if source == "-" or io.is_file(source):
        request = io.parse_message(io.load_document(source), pb.ComputeControlChartRequest)
    else:
        request = pb.ComputeControlChartRequest(characteristic=source)
        chart_type = chart_type or "xbar_r"
    if chart_type:
        request.chart_type = control_chart_pb2.ChartType.Value(f"CHART_TYPE_{chart_type.upper()}")
    if rules:
        request.rules = control_chart_pb2.RuleSet.Value(f"RULE_SET_{rules.upper()}")
    with context.client(QualityClient) as client:
        reply = client.compute_control_chart(request)
    if png is not None:
        from manufacturing_sdk.cli.pictures import write_control_chart

        write_control_chart(reply.chart, png)
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
    for violation in reply.chart.violations:
        click.echo(f"{violation.rule} at subgroup {violation.at}: {violation.description}")


@quality.command()
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--model", default="neu-surface", show_default=True, help="Model to judge with.")
@click.option(
    "--overlay",
    type=PNG,
    help="Also write the part with its defect regions boxed (anomaly models: and the "
    "defective pixels tinted).",
)
@pass_context
def inspect(context: Context, image: Path, model: str, overlay: Path | None) -> None:
    """Judge one part image (PNG, JPEG or BMP) with the active version of a model.

    \b
    Example:
      mfg quality inspect part.png --model neu-surface --overlay overlay.png
    """
    data = image.read_bytes()
    with context.client(QualityClient) as client:
        reply = client.inspect(pb.InspectRequest(image=data, model=model))
    if overlay is not None:
        from manufacturing_sdk.cli.pictures import write_overlay

        write_overlay(data, reply.result, overlay)
    if context.json_output:
        io.print_json(reply)
        return
    result = reply.result
    verdict = inspection_pb2.Verdict.Name(result.verdict).removeprefix("VERDICT_").lower()
    click.echo(
        f"{image.name}: {verdict} {result.defect_class} "
        f"(model {result.model_name} {result.model_version})"
    )
    if result.probabilities:
        io.print_table(
            "Most likely classes",
            ("class", "probability"),
            [(p.label, f"{p.probability:.3f}") for p in result.probabilities[:3]],
        )
    else:  # an anomaly model
        click.echo(
            f"anomaly score {result.anomaly_score:.4g} (threshold {result.anomaly_threshold:.4g})"
        )
    io.print_table(
        "Defect regions (pixels)",
        ("x_min", "y_min", "x_max", "y_max", "score"),
        [(b.x_min, b.y_min, b.x_max, b.y_max, f"{b.score:.3g}") for b in result.regions],
    )


def labelled_images(source: Path) -> list[tuple[Path, str]]:
    """(image, label) pairs from a folder with one subfolder per label, or from a CSV
    file with columns image,label (paths relative to the file); in name order per label,
    since the service holds out the last third of each label as sent."""
    if source.is_dir():
        pairs = [
            (path, folder.name)
            for folder in sorted(p for p in source.iterdir() if p.is_dir())
            for path in sorted(folder.iterdir())
            if path.suffix.lower() in IMAGE_SUFFIXES
        ]
    else:
        pairs = []
        for number, row in enumerate(io.csv_rows(source), start=2):
            if not row.get("image") or not row.get("label"):
                raise click.BadParameter(f"{source.name} line {number}: needs image and label")
            pairs.append((source.parent / row["image"], row["label"]))
    if not pairs:
        raise click.BadParameter(
            f"no labelled images in {source}: expected LABEL/*.png folders or image,label rows"
        )
    missing = [str(path) for path, _ in pairs if not path.is_file()]
    if missing:
        raise click.BadParameter(f"missing images: {', '.join(missing[:5])}")
    return pairs


def _training_requests(
    model: str, pairs: Sequence[tuple[Path, str]], sent: Callable[[], None]
) -> Iterator[pb.TrainInspectionModelRequest]:
    for path, label in pairs:
        yield pb.TrainInspectionModelRequest(model=model, image=path.read_bytes(), label=label)
        sent()


@quality.command()
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--model", required=True, help="Model to train a new version of.")
@click.option("--promote", is_flag=True, help="Make the new version the active one.")
@pass_context
def train(context: Context, source: Path, model: str, promote: bool) -> None:
    """Train a new version of a defect classifier from labelled images: a folder with one
    subfolder per label, or a CSV file with columns image,label.

    \b
    Example:
      mfg quality train images/ --model line-7 --promote
    """
    pairs = labelled_images(source)
    with (
        Progress(disable=context.json_output) as progress,
        context.client(QualityClient) as client,
    ):
        sending = progress.add_task("sending images", total=len(pairs))

        def sent() -> None:
            progress.advance(sending)
            if progress.tasks[sending].finished:  # the service now fits and evaluates
                progress.add_task("training", total=None)

        reply = client.train_inspection_model(
            _training_requests(model, pairs, sent),
            timeout_s=max(context.timeout_s, TRAIN_DEADLINE_S),
        )
        if promote:
            request = pb.PromoteModelRequest(name=model, version=reply.model.version)
            reply.model.CopyFrom(client.promote_model(request).model)
    if context.json_output:
        io.print_json(reply)
        return
    version = reply.model
    metrics = ", ".join(f"{k} {v:.3f}" for k, v in sorted(version.metrics.items()))
    state = "active" if version.active else "not active until promoted"
    click.echo(f"{version.name} {version.version}: {state}; held out: {metrics}")
    matrix = reply.confusion_matrix
    io.print_table(
        "Held-out confusion matrix (rows: true label)",
        ("", *matrix.labels),
        [(label, *row.counts) for label, row in zip(matrix.labels, matrix.rows, strict=True)],
    )
