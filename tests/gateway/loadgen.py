"""Steady load through the gateway, from a process of its own (the rollout tests' caller).

    python -m tests.gateway.loadgen --target 127.0.0.1:PORT --rate 150 --streams 2 \
        --duration 120 --out results.json

Sends ``--rate`` unary calls per second to the quality service (ComputeControlChart and,
one in five, GetServiceInfo, which says which color answered), and keeps ``--streams``
grpc.health.v1 Watch streams open through the gateway, each for ``--stream-s`` seconds
before it cancels it and opens the next. Every ``--snapshot-s`` it rewrites ``--out``
(atomically) with cumulative counts, so a test can diff two snapshots around whatever it
does; SIGTERM/SIGINT or ``--duration`` end it after in-flight calls complete.

A failed unary call is any that does not end OK. A failed stream is one that ends with
an error before the client cancels it, or reports anything but SERVING.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from manufacturing.quality.v1 import control_chart_pb2, quality_service_pb2

SERVICE = "manufacturing.quality.v1.QualityService"
CALL_TIMEOUT_S = 5.0


class Results:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.unary: Counter[str] = Counter()  # status code name -> calls
        self.colors: Counter[str] = Counter()
        self.streams: Counter[str] = Counter()  # ok / failed:<why>
        self.failures: list[dict[str, Any]] = []
        self.in_flight = 0

    def fail(self, kind: str, detail: str) -> None:
        if len(self.failures) < 200:
            self.failures.append({"t": time.time(), "kind": kind, "detail": detail[:200]})

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "time": time.time(),
                "unary": dict(self.unary),
                "colors": dict(self.colors),
                "streams": dict(self.streams),
                "failures": list(self.failures),
                "in_flight": self.in_flight,
            }


def chart_request(i: int) -> quality_service_pb2.ComputeControlChartRequest:
    base = 10.0 + (i % 7)
    subgroups = [
        control_chart_pb2.Subgroup(values=[base + 0.1 * j, base - 0.05 * j, base + 0.02 * k])
        for j, k in zip(range(5), range(5, 10), strict=True)
    ]
    return quality_service_pb2.ComputeControlChartRequest(
        chart_type=control_chart_pb2.CHART_TYPE_XBAR_R, subgroups=subgroups
    )


def unary_load(channel: grpc.Channel, rate: float, stop: threading.Event, out: Results) -> None:
    chart = channel.unary_unary(
        f"/{SERVICE}/ComputeControlChart",
        request_serializer=quality_service_pb2.ComputeControlChartRequest.SerializeToString,
        response_deserializer=quality_service_pb2.ComputeControlChartResponse.FromString,
    )
    info = channel.unary_unary(
        f"/{SERVICE}/GetServiceInfo",
        request_serializer=quality_service_pb2.GetServiceInfoRequest.SerializeToString,
        response_deserializer=quality_service_pb2.GetServiceInfoResponse.FromString,
    )

    def done(future: Any, is_info: bool) -> None:
        with out.lock:
            out.in_flight -= 1
            code = future.code()
            out.unary[code.name] += 1
            if code is grpc.StatusCode.OK:
                if is_info:
                    out.colors[future.result().info.color or "none"] += 1
            else:
                out.fail("unary", f"{code.name}: {future.details()}")

    interval = 1.0 / rate
    next_at = time.monotonic()
    i = 0
    while not stop.is_set():
        is_info = i % 5 == 0
        with out.lock:
            out.in_flight += 1
        if is_info:
            future = info.future(
                quality_service_pb2.GetServiceInfoRequest(), timeout=CALL_TIMEOUT_S
            )
        else:
            future = chart.future(chart_request(i), timeout=CALL_TIMEOUT_S)
        future.add_done_callback(functools.partial(done, is_info=is_info))
        i += 1
        next_at += interval
        delay = next_at - time.monotonic()
        if delay > 0:
            stop.wait(delay)
        else:
            next_at = time.monotonic()  # behind: do not burst to catch up


def stream_load(channel: grpc.Channel, hold_s: float, stop: threading.Event, out: Results) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    request = health_pb2.HealthCheckRequest(service=SERVICE)
    while not stop.is_set():
        stream = stub.Watch(
            request, timeout=hold_s + CALL_TIMEOUT_S, metadata=(("x-mfg-service", "quality"),)
        )
        timer = threading.Timer(hold_s, stream.cancel)
        timer.start()
        outcome = "ok"
        try:
            for response in stream:
                if response.status != health_pb2.HealthCheckResponse.SERVING:
                    outcome = "failed:" + health_pb2.HealthCheckResponse.ServingStatus.Name(
                        response.status
                    )
                    stream.cancel()
                    break
        except grpc.RpcError as error:
            if error.code() is not grpc.StatusCode.CANCELLED or stream.is_active():
                outcome = f"failed:{error.code().name}"
        finally:
            timer.cancel()
        with out.lock:
            out.streams[outcome] += 1
            if outcome != "ok":
                out.fail("stream", outcome)


def _write(path: Path, document: dict[str, Any]) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(document), encoding="utf-8")
    os.replace(temporary, path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("--rate", type=float, default=150.0)
    parser.add_argument("--streams", type=int, default=2)
    parser.add_argument("--stream-s", type=float, default=1.5)
    parser.add_argument("--duration", type=float, default=120.0)
    parser.add_argument("--snapshot-s", type=float, default=0.2)
    parser.add_argument("--out", type=Path, required=True)
    options = parser.parse_args()

    stop = threading.Event()

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    results = Results()
    with grpc.insecure_channel(options.target) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        workers = [
            threading.Thread(target=unary_load, args=(channel, options.rate, stop, results)),
            *(
                threading.Thread(
                    target=stream_load, args=(channel, options.stream_s, stop, results)
                )
                for _ in range(options.streams)
            ),
        ]
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + options.duration
        while not stop.wait(options.snapshot_s):
            _write(options.out, {**results.snapshot(), "running": True})
            if time.monotonic() > deadline:
                stop.set()
        for worker in workers:
            worker.join(timeout=CALL_TIMEOUT_S + options.stream_s + 1)
        end = time.monotonic() + CALL_TIMEOUT_S
        while results.snapshot()["in_flight"] and time.monotonic() < end:
            time.sleep(0.05)
    _write(options.out, {**results.snapshot(), "running": False})


if __name__ == "__main__":
    main()
