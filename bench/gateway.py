"""What the Envoy gateway costs: the same trivial call straight to a service and through Envoy.

Run with ``.venv/bin/python -m bench.gateway`` (about 20-30 s).

One real quality service process (``python -m services.quality``, the repository's code)
and one Envoy from ``gateway/envoy.yaml`` with that process as quality's blue cluster. The
client is this process: ``--concurrency`` threads (default 8), each on its own channel
(one HTTP/2 connection apiece, as independent callers would be), calling
``QualityService/GetServiceInfo`` back to back. The two targets alternate in ABBA rounds
(``--rounds`` x ``--window-s`` each) so that load from other processes on the machine falls
on both alike. Per target: calls/s over all rounds and the median latency of every call.

The last line: ``gateway: direct_rps=A via_envoy_rps=B ratio=B/A added_p50_ms=L``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

import grpc
from manufacturing.quality.v1 import quality_service_pb2

from services.devstack.envoy import EnvoyProcess
from services.devstack.suite import free_ports
from services.rollout import checks, processes
from services.rollout.xds import ServiceLayout

METHOD = "/manufacturing.quality.v1.QualityService/GetServiceInfo"
CALL_TIMEOUT_S = 5.0


def run_window(target: str, concurrency: int, seconds: float) -> tuple[int, list[float], int]:
    """Calls completed, their latencies (s) and failures, ``concurrency`` callers at once."""
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    failures = [0] * concurrency
    start = threading.Barrier(concurrency + 1)
    stop = threading.Event()

    def caller(index: int) -> None:
        with grpc.insecure_channel(target) as channel:
            call = channel.unary_unary(
                METHOD,
                request_serializer=quality_service_pb2.GetServiceInfoRequest.SerializeToString,
                response_deserializer=quality_service_pb2.GetServiceInfoResponse.FromString,
            )
            request = quality_service_pb2.GetServiceInfoRequest()
            call(request, timeout=CALL_TIMEOUT_S)  # connect outside the window
            start.wait()
            mine = latencies[index]
            while not stop.is_set():
                began = time.perf_counter()
                try:
                    call(request, timeout=CALL_TIMEOUT_S)
                except grpc.RpcError:
                    failures[index] += 1
                    continue
                mine.append(time.perf_counter() - began)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    start.wait()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    merged = [x for per_thread in latencies for x in per_thread]
    return len(merged), merged, sum(failures)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway", description=__doc__)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--window-s", type=float, default=2.0)
    parser.add_argument("--envoy-concurrency", type=int, default=1, help="Envoy worker threads")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as scratch:
        service_port, *unused = free_ports(5)
        environ = {"DATA_DIR": scratch, "APP_ENV": "development", "MFG_METRICS__PORT": "0"}
        environ["MFG_LOGGING__LEVEL"] = "WARNING"  # no access log line per call
        (pid,) = processes.start_color(
            "quality", "blue", [service_port], processes.REPOSITORY, environ, Path(scratch)
        )
        try:
            checks.wait_serving(
                service_port,
                "quality",
                startup_timeout=60,
                ready_timeout=30,
                alive=lambda: processes.alive(pid),
            )
            layout = {
                "quality": ServiceLayout({"blue": (service_port,), "green": ()}),
                "scheduling": ServiceLayout({"blue": (unused[0],), "green": (unused[1],)}),
                "maintenance": ServiceLayout({"blue": (unused[2],), "green": (unused[3],)}),
            }
            with EnvoyProcess(
                layout,
                listen_host="127.0.0.1",
                health_check_interval=1.0,
                concurrency=options.envoy_concurrency,
                log_level="error",
            ) as envoy:
                # Envoy's access log goes to a file: the same cost it has in production.
                targets = {
                    "direct": f"127.0.0.1:{service_port}",
                    "via_envoy": f"127.0.0.1:{envoy.port}",
                }
                # Warm both paths (connections, Envoy's first health check).
                deadline = time.monotonic() + 10
                while run_window(targets["via_envoy"], 1, 0.2)[0] == 0:
                    if time.monotonic() > deadline:
                        raise SystemExit("no call got through Envoy")
                run_window(targets["direct"], options.concurrency, 0.5)
                calls = {name: 0 for name in targets}
                latencies: dict[str, list[float]] = {name: [] for name in targets}
                failed = {name: 0 for name in targets}
                order = ["direct", "via_envoy"]
                for round_index in range(options.rounds):
                    for name in order if round_index % 2 == 0 else reversed(order):
                        n, measured, failures = run_window(
                            targets[name], options.concurrency, options.window_s
                        )
                        calls[name] += n
                        latencies[name] += measured
                        failed[name] += failures
                        print(
                            f"round {round_index + 1} {name:<9} {n / options.window_s:8.0f} calls/s"
                        )
        finally:
            processes.stop([pid], timeout=15)

    seconds = options.rounds * options.window_s
    rps = {name: calls[name] / seconds for name in calls}
    p50 = {name: statistics.median(latencies[name]) * 1000 for name in latencies}
    p99 = {name: statistics.quantiles(latencies[name], n=100)[98] * 1000 for name in latencies}
    for name in calls:
        print(
            f"{name:<9} {rps[name]:8.0f} calls/s  p50 {p50[name]:.2f} ms  p99 {p99[name]:.2f} ms"
            f"  failed {failed[name]}  (concurrency {options.concurrency})"
        )
    print(
        f"gateway: direct_rps={rps['direct']:.0f} via_envoy_rps={rps['via_envoy']:.0f} "
        f"ratio={rps['via_envoy'] / rps['direct']:.2f} "
        f"added_p50_ms={p50['via_envoy'] - p50['direct']:.2f}"
    )


if __name__ == "__main__":
    main()
