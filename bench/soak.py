"""Soak: the whole suite under a steady mixed load for a long time; failures, memory, p99.

Run with ``.venv/bin/python -m bench.soak`` (10 min by default; ``--duration 60``).

The local topology of ``make up`` (``services.devstack``: three service processes from
this repository, each on a scratch SQLite database, behind Envoy), on free ports. The
client is this process, calling through the gateway:

1. **measure**: ``--concurrency`` callers back to back for ``--measure-s``: the suite's
   maximum rate for this mix, calls/s;
2. **soak**: the same callers paced to ``--load`` (0.7) of that maximum for
   ``--duration`` seconds. Each call has a deadline; a caller that falls behind its
   schedule calls back to back until it catches up (no burst beyond the pace).

The mix, by weight: quality ComputeControlChart (3), maintenance GetLatestReadings (3),
scheduling ListSchedules (1) and SolveStream (1; a server stream read to its end, on a
two-job problem, which also stores a schedule). Memory is the resident set size of the
three service processes (``/proc/<pid>/status``), summed: at the start of the soak (after
the measure phase warmed everything up) and at its end.

The last line: ``soak: calls=N failed=F rss_growth=G% p99_ms=L`` (the soak phase only).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.protobuf import timestamp_pb2
from manufacturing.maintenance.v1 import maintenance_service_pb2 as maintenance_pb
from manufacturing.maintenance.v1 import maintenance_service_pb2_grpc, sensor_reading_pb2
from manufacturing.quality.v1 import control_chart_pb2, quality_service_pb2_grpc
from manufacturing.quality.v1 import quality_service_pb2 as quality_pb
from manufacturing.scheduling.v1 import schedule_pb2, scheduling_service_pb2_grpc
from manufacturing.scheduling.v1 import scheduling_service_pb2 as scheduling_pb

from services.devstack.suite import LocalSuite, SuitePorts, free_ports

CALL_TIMEOUT_S = 10.0
MACHINE = "press-7"

Call = Callable[[grpc.Channel], None]


def _problem() -> schedule_pb2.Problem:
    def operation(machine: str, duration: int) -> schedule_pb2.Operation:
        eligible = schedule_pb2.EligibleMachine(machine_id=machine, duration=duration)
        return schedule_pb2.Operation(eligible_machines=[eligible])

    return schedule_pb2.Problem(
        machines=[schedule_pb2.Machine(id="lathe"), schedule_pb2.Machine(id="mill")],
        jobs=[
            schedule_pb2.Job(id="shaft", operations=[operation("lathe", 3), operation("mill", 2)]),
            schedule_pb2.Job(id="flange", operations=[operation("mill", 4), operation("lathe", 3)]),
        ],
    )


SOLVE = scheduling_pb.SolveStreamRequest(problem=_problem())
CHART = quality_pb.ComputeControlChartRequest(
    chart_type=control_chart_pb2.CHART_TYPE_XBAR_R,
    subgroups=[
        control_chart_pb2.Subgroup(values=[74.03, 74.00, 74.01]),
        control_chart_pb2.Subgroup(values=[73.99, 74.01, 74.00]),
        control_chart_pb2.Subgroup(values=[74.01, 74.02, 73.99]),
    ],
)


def solve_stream(channel: grpc.Channel) -> None:
    stub = scheduling_service_pb2_grpc.SchedulingServiceStub(channel)
    replies = list(stub.SolveStream(SOLVE, timeout=CALL_TIMEOUT_S))
    if not replies or not replies[-1].final:
        raise RuntimeError("SolveStream ended without its final schedule")


def list_schedules(channel: grpc.Channel) -> None:
    stub = scheduling_service_pb2_grpc.SchedulingServiceStub(channel)
    stub.ListSchedules(scheduling_pb.ListSchedulesRequest(page_size=5), timeout=CALL_TIMEOUT_S)


def control_chart(channel: grpc.Channel) -> None:
    stub = quality_service_pb2_grpc.QualityServiceStub(channel)
    stub.ComputeControlChart(CHART, timeout=CALL_TIMEOUT_S)


def latest_readings(channel: grpc.Channel) -> None:
    stub = maintenance_service_pb2_grpc.MaintenanceServiceStub(channel)
    request = maintenance_pb.GetLatestReadingsRequest(machine_id=MACHINE)
    stub.GetLatestReadings(request, timeout=CALL_TIMEOUT_S)


MIX: tuple[Call, ...] = (
    *(control_chart, latest_readings) * 3,
    list_schedules,
    solve_stream,
)


def seed(channel: grpc.Channel) -> None:
    """Readings for the machine the load asks about."""
    stub = maintenance_service_pb2_grpc.MaintenanceServiceStub(channel)
    now = timestamp_pb2.Timestamp()
    now.GetCurrentTime()
    readings = [
        sensor_reading_pb2.SensorReading(machine_id=MACHINE, sensor=s, time=now, value=v)
        for s, v in (("spindle_temp", 61.5), ("vibration", 0.42))
    ]
    stub.IngestReadings(iter([maintenance_pb.IngestReadingsRequest(readings=readings)]), timeout=10)


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, seconds: float | None, error: str = "") -> None:
        with self.lock:
            if seconds is None:
                self.failed += 1
                self.errors[error] = self.errors.get(error, 0) + 1
            else:
                self.latencies.append(seconds)


def run(target: str, concurrency: int, seconds: float, rate: float | None) -> Tally:
    """``concurrency`` callers for ``seconds``; paced to ``rate`` calls/s in all if given."""
    tally = Tally()
    stop_at = time.monotonic() + seconds

    def caller(index: int) -> None:
        picker = random.Random(index)  # noqa: S311 (picks calls, no secret)
        interval = concurrency / rate if rate else 0.0
        next_at = time.monotonic() + picker.random() * interval
        with grpc.insecure_channel(target) as channel:
            while True:
                if interval:
                    time.sleep(max(0.0, next_at - time.monotonic()))
                    next_at += interval
                if time.monotonic() >= stop_at:
                    return
                call = picker.choice(MIX)
                began = time.perf_counter()
                try:
                    call(channel)
                except grpc.RpcError as error:
                    tally.record(None, f"{call.__name__} {error.code().name}")
                except RuntimeError as error:
                    tally.record(None, f"{call.__name__} {error}")
                else:
                    tally.record(time.perf_counter() - began)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return tally


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--duration", type=float, default=600.0, help="soak seconds")
    parser.add_argument("--load", type=float, default=0.7, help="share of the measured max")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--measure-s", type=float, default=15.0)
    options = parser.parse_args()

    # Free metrics ports (a suite may run here already) and no access log line per call.
    os.environ.update({"MFG_METRICS__PORT": "0", "MFG_LOGGING__LEVEL": "WARNING"})
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as scratch:
        gateway, admin, *backends = free_ports(8)
        names = ("scheduling", "quality", "maintenance")
        blue = dict(zip(names, backends[:3], strict=True))
        ports = SuitePorts(gateway, admin, blue, dict(zip(names, backends[3:], strict=True)))
        suite = LocalSuite(ports, Path(scratch), Path(scratch) / "logs")
        try:
            suite.start()
            pids = [
                pid
                for state in suite.store.load().services.values()
                for pid in state.colors["blue"].pids
            ]
            target = f"127.0.0.1:{gateway}"
            with grpc.insecure_channel(target) as channel:
                seed(channel)
            measured = run(target, options.concurrency, options.measure_s, rate=None)
            max_rps = len(measured.latencies) / options.measure_s
            rate = options.load * max_rps
            print(
                f"measured max {max_rps:.0f} calls/s ({measured.failed} failed); "
                f"soaking at {rate:.0f} calls/s for {options.duration:.0f} s",
                flush=True,
            )
            rss_before = rss_kib(pids)
            soaked = run(target, options.concurrency, options.duration, rate=rate)
            rss_after = rss_kib(pids)
        finally:
            suite.stop()

    calls = len(soaked.latencies) + soaked.failed
    p99_ms = statistics.quantiles(soaked.latencies, n=100)[98] * 1000
    growth = 100.0 * (rss_after - rss_before) / rss_before
    print(
        f"achieved {calls / options.duration:.0f} calls/s; rss {rss_before / 1024:.0f} -> "
        f"{rss_after / 1024:.0f} MiB; p50 {statistics.median(soaked.latencies) * 1000:.1f} ms; "
        f"errors {soaked.errors or 'none'}"
    )
    print(
        f"soak: calls={calls} failed={soaked.failed} rss_growth={growth:.1f}% p99_ms={p99_ms:.1f}"
    )


if __name__ == "__main__":
    main()
