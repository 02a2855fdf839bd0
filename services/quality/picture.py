"""Pictures from the command line.

    python -m services.quality.picture chart --type xbar_r --csv rings.csv --out chart.png \\
        [--rules nelson|western_electric] [--exclude 14,22] [--auto-exclude]
    python -m services.quality.picture inspect --image part.jpg --model neu-surface \\
        --out overlay.png

``--csv``: one subgroup per line, values separated by commas (attribute charts:
``count,size`` per line; c chart: ``count``). The chart picture shows one panel per
statistic (e.g. X-bar above R), zones A/B/C, limits, and the points beyond the limits
or in a run-rule violation circled red. The overlay uses the shipped (active) model; an
anomaly model's defective pixels are tinted besides the boxes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from services.quality.domain.inspection.images import DEFAULT_MAX_PIXELS, decode_gray
from services.quality.domain.inspection.inspector import Inspector
from services.quality.domain.pictures import control_chart_image, inspection_overlay
from services.quality.domain.spc.study import ATTRIBUTES, ChartStudy, compute, validate
from services.quality.registry import SHIPPED_MODELS, ModelRegistry, memory_activations
from services.runtime.errors import Violations

CHARTS = ("xbar_r", "xbar_s", "i_mr", "p", "np", "c", "u", "ewma", "cusum")


def chart(args: argparse.Namespace) -> int:
    rows = [
        [float(v) for v in line.split(",") if v.strip()]
        for line in Path(args.csv).read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    attributes = args.type in ATTRIBUTES
    study = ChartStudy(
        chart_type=args.type,
        values=[[] for _ in rows] if attributes else rows,
        counts=[r[0] for r in rows] if attributes else [],
        sizes=[(r[1] if len(r) > 1 else 1.0) for r in rows] if attributes else [],
        excluded=[int(i) for i in args.exclude.split(",") if i] if args.exclude else [],
        auto_exclude=args.auto_exclude,
        rule_set=args.rules,
    )
    violations = Violations()
    validate(study, violations)
    violations.raise_if_any()
    result, found = compute(study)
    panels = []
    for index, series in enumerate(result.series):
        flagged = set(series.out_of_control())
        if index == 0:
            flagged |= {p for v in found for p in v.points}
        title = f"{args.type} - {series.statistic}"
        if index == 0 and found:
            title += "  (" + ", ".join(sorted({v.rule for v in found})) + ")"
        panels.append(control_chart_image(series, sorted(flagged), title=title))
    cv2.imwrite(args.out, np.vstack(panels))
    sys.stdout.write(
        f"wrote {args.out}: {len(found)} rule violations, excluded {result.excluded}\n"
    )
    return 0


def inspect(args: argparse.Namespace) -> int:
    registry = ModelRegistry(
        shipped=SHIPPED_MODELS,
        trained=Path(tempfile.mkdtemp()),
        activations=memory_activations(),
    )
    model = registry.active(args.model)
    pixels = decode_gray(Path(args.image).read_bytes(), "image", max_pixels=DEFAULT_MAX_PIXELS)
    result = Inspector().inspect(model, pixels)
    cv2.imwrite(args.out, inspection_overlay(pixels, result))
    sys.stdout.write(
        f"wrote {args.out}: {result.verdict.value} {result.defect_class} "
        f"{len(result.boxes)} regions{_pixels(result.mask)} (model {model.name} {model.version})\n"
    )
    return 0


def _pixels(mask: NDArray[np.uint8] | None) -> str:
    return "" if mask is None else f", {np.count_nonzero(mask)} defective pixels"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    chart_parser = commands.add_parser("chart", help="control chart PNG from a CSV file")
    chart_parser.add_argument("--type", choices=CHARTS, required=True)
    chart_parser.add_argument("--csv", required=True)
    chart_parser.add_argument("--out", required=True)
    chart_parser.add_argument("--rules", choices=("", "western_electric", "nelson"), default="")
    chart_parser.add_argument("--exclude", default="")
    chart_parser.add_argument("--auto-exclude", action="store_true")
    inspect_parser = commands.add_parser("inspect", help="inspection overlay PNG")
    inspect_parser.add_argument("--image", required=True)
    inspect_parser.add_argument("--model", default="neu-surface")
    inspect_parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    return chart(args) if args.command == "chart" else inspect(args)


if __name__ == "__main__":
    sys.exit(main())
