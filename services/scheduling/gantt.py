"""Draw a schedule as a Gantt chart (one row per machine), as SVG or PNG.

    python -m services.scheduling.gantt --orlib ../shared/data/jssp/ft06 --out ft06.svg
    python -m services.scheduling.gantt --schedule schedule.json --out plan.png
    python -m services.scheduling.gantt --target localhost:50051 --id <schedule id> --out plan.svg

``--schedule`` reads a ``manufacturing.scheduling.v1.Schedule`` in protobuf JSON (what
grpcurl prints for GetSchedule's ``schedule``); ``--target``/``--id`` fetch it from a
running service; ``--orlib`` solves an OR-Library instance here first (``--time-limit``).
The format follows the output's extension. Machine downtime is drawn hatched grey.
"""

from __future__ import annotations

import argparse
import colorsys
import html
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ROW = 28
LEFT = 90
TOP = 30
WIDTH = 1200


@dataclass(frozen=True)
class Bar:
    machine_id: str
    job_id: str
    operation_id: str
    start: int
    end: int


@dataclass(frozen=True)
class Chart:
    title: str
    machines: tuple[str, ...]
    bars: tuple[Bar, ...]
    downtime: tuple[tuple[str, int, int], ...] = ()


def _colour(index: int) -> tuple[int, int, int]:
    red, green, blue = colorsys.hsv_to_rgb((index * 0.618034) % 1.0, 0.55, 0.92)
    return int(red * 255), int(green * 255), int(blue * 255)


def _layout(chart: Chart) -> tuple[int, int, float, dict[str, int], dict[str, int]]:
    horizon = max([b.end for b in chart.bars] + [e for _, _, e in chart.downtime] + [1])
    height = TOP + ROW * len(chart.machines) + 40
    scale = (WIDTH - LEFT - 20) / horizon
    rows = {m: i for i, m in enumerate(chart.machines)}
    jobs: dict[str, int] = {}
    for bar in chart.bars:
        jobs.setdefault(bar.job_id, len(jobs))
    return horizon, height, scale, rows, jobs


def render_svg(chart: Chart) -> str:
    horizon, height, scale, rows, jobs = _layout(chart)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        'font-family="sans-serif" font-size="11">',
        '<defs><pattern id="down" width="6" height="6" patternUnits="userSpaceOnUse">'
        '<rect width="6" height="6" fill="#ddd"/><path d="M0,6 L6,0" stroke="#888"/>'
        "</pattern></defs>",
        f'<text x="{LEFT}" y="18" font-size="14">{html.escape(chart.title)}</text>',
    ]
    for machine, row in rows.items():
        y = TOP + row * ROW
        out.append(f'<text x="5" y="{y + ROW * 0.65:.1f}">{html.escape(machine)}</text>')
        out.append(
            f'<line x1="{LEFT}" y1="{y + ROW}" x2="{WIDTH - 20}" y2="{y + ROW}" stroke="#eee"/>'
        )
    for machine, start, end in chart.downtime:
        if machine in rows:
            x, y = LEFT + start * scale, TOP + rows[machine] * ROW + 2
            out.append(
                f'<rect x="{x:.1f}" y="{y}" width="{(end - start) * scale:.1f}" '
                f'height="{ROW - 4}" fill="url(#down)"/>'
            )
    for bar in chart.bars:
        red, green, blue = _colour(jobs[bar.job_id])
        x, y = LEFT + bar.start * scale, TOP + rows[bar.machine_id] * ROW + 2
        width = max(0.5, (bar.end - bar.start) * scale)
        label = html.escape(f"{bar.job_id}/{bar.operation_id} [{bar.start}, {bar.end})")
        out.append(
            f'<rect x="{x:.1f}" y="{y}" width="{width:.1f}" height="{ROW - 4}" '
            f'fill="rgb({red},{green},{blue})" stroke="#333" stroke-width="0.5">'
            f"<title>{label}</title></rect>"
        )
        if width > 7 * len(bar.job_id):
            out.append(
                f'<text x="{x + 2:.1f}" y="{y + ROW * 0.6:.1f}">{html.escape(bar.job_id)}</text>'
            )
    axis_y = TOP + ROW * len(rows) + 15
    for tick in range(0, horizon + 1, max(1, _tick(horizon))):
        x = LEFT + tick * scale
        out.append(f'<text x="{x:.1f}" y="{axis_y}" text-anchor="middle">{tick}</text>')
    out.append("</svg>")
    return "\n".join(out)


def render_png(chart: Chart) -> bytes:
    horizon, height, scale, rows, jobs = _layout(chart)
    image = np.full((height, WIDTH, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(image, chart.title, (LEFT, 18), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    for machine, row in rows.items():
        y = TOP + row * ROW
        cv2.putText(image, machine[:12], (5, int(y + ROW * 0.65)), font, 0.4, (0, 0, 0), 1)
    for machine, start, end in chart.downtime:
        if machine in rows:
            y = TOP + rows[machine] * ROW + 2
            x0, x1 = int(LEFT + start * scale), int(LEFT + end * scale)
            cv2.rectangle(image, (x0, y), (x1, y + ROW - 4), (200, 200, 200), -1)
    for bar in chart.bars:
        red, green, blue = _colour(jobs[bar.job_id])
        y = TOP + rows[bar.machine_id] * ROW + 2
        x0, x1 = int(LEFT + bar.start * scale), int(LEFT + bar.end * scale)
        cv2.rectangle(image, (x0, y), (max(x0 + 1, x1), y + ROW - 4), (blue, green, red), -1)
        cv2.rectangle(image, (x0, y), (max(x0 + 1, x1), y + ROW - 4), (60, 60, 60), 1)
        if x1 - x0 > 8 * len(bar.job_id):
            cv2.putText(image, bar.job_id, (x0 + 2, int(y + ROW * 0.6)), font, 0.35, (0, 0, 0), 1)
    axis_y = TOP + ROW * len(rows) + 15
    for tick in range(0, horizon + 1, max(1, _tick(horizon))):
        x = int(LEFT + tick * scale)
        cv2.putText(image, str(tick), (x - 8, axis_y), font, 0.35, (0, 0, 0), 1)
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return encoded.tobytes()


def _tick(horizon: int) -> int:
    raw = horizon / 10
    magnitude: int = 10 ** max(0, len(str(int(raw))) - 1)
    return max(1, round(raw / magnitude) * magnitude)


def chart_from_schedule_message(message: object, title: str = "") -> Chart:
    """A chart of a ``manufacturing.scheduling.v1.Schedule`` message."""
    from manufacturing.scheduling.v1 import schedule_pb2

    assert isinstance(message, schedule_pb2.Schedule)
    machines = [m.id for m in message.problem.machines] or sorted(
        {op.machine_id for op in message.operations}
    )
    return Chart(
        title=title or f"schedule {message.id} - makespan {message.makespan}",
        machines=tuple(machines),
        bars=tuple(
            Bar(op.machine_id, op.job_id, op.operation_id, op.start, op.end)
            for op in message.operations
        ),
        downtime=tuple(
            (m.id, w.start, w.end) for m in message.problem.machines for w in m.unavailable
        ),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Draw a schedule as a Gantt chart.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--schedule", type=Path, help="Schedule message in protobuf JSON")
    source.add_argument("--orlib", type=Path, help="OR-Library instance to solve and draw")
    source.add_argument("--target", help="host:port of a running scheduling service")
    parser.add_argument("--id", help="schedule id (with --target)")
    parser.add_argument("--time-limit", type=float, default=5.0, help="seconds (with --orlib)")
    parser.add_argument("--out", type=Path, required=True, help="output .svg or .png")
    args = parser.parse_args(argv)
    if args.out.suffix.lower() not in (".svg", ".png"):
        parser.error("--out must end in .svg or .png")
    chart = _load(args, parser)
    if args.out.suffix.lower() == ".svg":
        args.out.write_text(render_svg(chart), encoding="utf-8")
    else:
        args.out.write_bytes(render_png(chart))
    print(f"wrote {args.out} ({len(chart.bars)} operations on {len(chart.machines)} machines)")
    return 0


def _load(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Chart:
    from google.protobuf import json_format
    from manufacturing.scheduling.v1 import schedule_pb2

    if args.schedule is not None:
        message = json_format.Parse(args.schedule.read_text(), schedule_pb2.Schedule())
        return chart_from_schedule_message(message)
    if args.orlib is not None:
        from services.scheduling.domain.orlib import parse_orlib
        from services.scheduling.domain.solver import SolveOptions, solve

        problem = parse_orlib(args.orlib.read_text())
        solution = solve(problem, SolveOptions(time_limit_s=args.time_limit))
        return Chart(
            title=f"{args.orlib.name} - makespan {solution.makespan} ({solution.status.value})",
            machines=tuple(m.id for m in problem.machines),
            bars=tuple(
                Bar(a.machine_id, a.job_id, a.operation_id, a.start, a.end)
                for a in solution.assignments
            ),
        )
    if not args.id:
        parser.error("--target needs --id")
    import grpc
    from manufacturing.scheduling.v1 import scheduling_service_pb2 as pb
    from manufacturing.scheduling.v1 import scheduling_service_pb2_grpc

    with grpc.insecure_channel(args.target) as channel:
        stub = scheduling_service_pb2_grpc.SchedulingServiceStub(channel)
        reply = stub.GetSchedule(pb.GetScheduleRequest(id=args.id), timeout=10)
    return chart_from_schedule_message(reply.schedule)


if __name__ == "__main__":
    sys.exit(main())
