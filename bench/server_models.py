"""Threaded ``grpc.server`` vs ``grpc.aio.server``: measured side by side in one run.

Run with ``.venv/bin/python -m bench.server_models`` (about 35-40 s on 2 cores).

Each server runs in its own ``spawn`` subprocess pinned to one core; this process is the load
generator (a ``grpc.aio`` client) pinned to the other core. Both servers serve the same methods:

* ``grpc.health.v1.Health/Check`` and ``/Watch`` (the stock grpc_health servicers) and
* a generic bytes service ``bench.Bench``: ``Stream`` (server stream of small messages),
  ``Idle`` (server stream that sends one message then waits, written the way ordinary
  subscription handlers are: a generator for the threaded server, an async generator for aio),
  ``Cpu`` (~20 ms of numpy work inline) and ``CpuOffload`` (the same work via
  ``asyncio.to_thread`` on aio; identical to ``Cpu`` on the threaded server).

Measured per model: unary calls/s with 64 calls in flight, sequential-call latency, stream
messages/s, thread count and RSS with 200 idle streams open (and whether unary calls are still
served meanwhile), and the latency of a trivial call while 4 CPU-heavy calls run. Throughput,
latency and streaming alternate between the two servers in short ABBA rounds so that load from
other processes on the machine falls on both alike. The last line of output is a single
machine-readable summary line.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

SERVER_OPTIONS: list[tuple[str, Any]] = [("grpc.so_reuseport", 0)]
THREADED_MAX_WORKERS = 32  # the services' default (services/runtime/config.py)
BIG_POOL_MAX_WORKERS = 256  # a pool large enough for every idle stream
SERVER_MAX_LIFETIME_S = 300.0  # a server subprocess exits on its own after this
SERVER_START_TIMEOUT_S = 30.0

# Unary, latency and streaming runs alternate between the two servers in ROUNDS short windows
# (ABBA order), so drifting load from other processes hits both models alike.
ROUNDS = 4
UNARY_INFLIGHT = 64
UNARY_WARMUP_S = 0.5  # before each model's first window
UNARY_RAMP_S = 0.1  # before each later window
UNARY_WINDOW_S = 0.75  # x ROUNDS = 3 s measured per model
LATENCY_CALLS_PER_ROUND = 100
LATENCY_ROUND_MAX_S = 1.0
STREAM_WINDOW_S = 0.5  # x ROUNDS = 2 s measured per model
STREAM_MAX_MESSAGES = 10_000_000
STREAM_PAYLOAD = b"x" * 16
IDLE_STREAMS = 200
IDLE_OPEN_TIMEOUT_S = 2.0
IDLE_PROBE_WINDOW_S = 2.0
IDLE_HANDLER_MAX_S = 30.0  # an idle stream handler never waits longer than this
CPU_TARGET_MS = 20.0
CPU_CONCURRENT = 4
CPU_WARMUP_S = 0.3
CPU_DURATION_S = 2.0
CALL_TIMEOUT_S = 5.0

SERVICE = "bench.Bench"
CHECK_REQUEST = health_pb2.HealthCheckRequest()
_EOF: Any = grpc.aio.EOF  # type: ignore[attr-defined]  # missing from grpc-stubs


# --------------------------------------------------------------------------- server side


def _pin_process(cpu: int) -> None:
    """Pin every existing thread of this process (and so all later ones) to ``cpu``."""
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(int(tid), {cpu})


def _numpy_unit() -> Callable[[], float]:
    """One small slice of numpy work (ufuncs and a sort: numpy drops the GIL inside them)."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    import numpy as np  # imported here: after the thread-count variables are set

    base = np.random.default_rng(0).standard_normal(20_000)

    def unit() -> float:
        return float(np.sort(np.sin(base) * np.cos(base))[0])

    return unit


def calibrate_repeats(target_ms: float) -> int:
    """How many units make ``target_ms``; done once so that every server does the same work."""
    unit = _numpy_unit()
    for _ in range(5):
        unit()
    batches = []  # the fastest batch: robust against other processes sharing the core
    for _ in range(10):
        t0 = time.perf_counter()
        for _ in range(4):
            unit()
        batches.append((time.perf_counter() - t0) / 4)
    return max(1, round(target_ms / 1000 / min(batches)))


def _make_cpu_work(repeats: int) -> tuple[Callable[[], float], float]:
    """The CPU-heavy handler body and its fastest measured duration here, in ms."""
    unit = _numpy_unit()

    def work() -> float:
        total = 0.0
        for _ in range(repeats):
            total += unit()
        return total

    samples = []
    for _ in range(5):
        t0 = time.perf_counter()
        work()
        samples.append((time.perf_counter() - t0) * 1000)
    return work, min(samples)


def _stream_count(request: bytes) -> int:
    return min(int.from_bytes(request[:8], "big"), STREAM_MAX_MESSAGES)


def _threaded_handlers(work: Callable[[], float]) -> grpc.GenericRpcHandler[Any, Any]:
    def stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        for _ in range(_stream_count(request)):
            yield STREAM_PAYLOAD

    def idle(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        ended = threading.Event()
        if not context.add_callback(ended.set):  # already cancelled while queued
            return
        yield b"open"
        ended.wait(IDLE_HANDLER_MAX_S)  # holds this worker thread until the client leaves

    def cpu(request: bytes, context: grpc.ServicerContext) -> bytes:
        work()
        return b"ok"

    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Stream": grpc.unary_stream_rpc_method_handler(stream),
            "Idle": grpc.unary_stream_rpc_method_handler(idle),
            "Cpu": grpc.unary_unary_rpc_method_handler(cpu),
            "CpuOffload": grpc.unary_unary_rpc_method_handler(cpu),
        },
    )


def _aio_handlers(work: Callable[[], float]) -> grpc.GenericRpcHandler[Any, Any]:
    async def stream(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        for _ in range(_stream_count(request)):
            yield STREAM_PAYLOAD

    async def idle(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        yield b"open"
        await asyncio.sleep(IDLE_HANDLER_MAX_S)  # cancelled when the client leaves

    async def cpu_inline(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        work()  # runs on the event loop thread: nothing else is served meanwhile
        return b"ok"

    async def cpu_offload(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        await asyncio.to_thread(work)
        return b"ok"

    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Stream": grpc.unary_stream_rpc_method_handler(stream),
            "Idle": grpc.unary_stream_rpc_method_handler(idle),
            "Cpu": grpc.unary_unary_rpc_method_handler(cpu_inline),
            "CpuOffload": grpc.unary_unary_rpc_method_handler(cpu_offload),
        },
    )


def _wait_for_stop(conn: Connection) -> None:
    """Block until the parent says stop, closes the pipe or the lifetime cap passes."""
    deadline = time.monotonic() + SERVER_MAX_LIFETIME_S
    while time.monotonic() < deadline:
        try:
            if conn.poll(1.0):
                conn.recv()
                return
        except (EOFError, OSError):
            return


def _serve_threaded(max_workers: int, work: Callable[[], float], conn: Connection) -> int:
    server = grpc.server(ThreadPoolExecutor(max_workers=max_workers), options=SERVER_OPTIONS)
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    server.add_generic_rpc_handlers((_threaded_handlers(work),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    conn.send(("ready", port))
    _wait_for_stop(conn)
    server.stop(0.5).wait(2.0)
    return port


async def _serve_aio(work: Callable[[], float], conn: Connection) -> None:
    server = grpc.aio.server(options=SERVER_OPTIONS)
    servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    server.add_generic_rpc_handlers((_aio_handlers(work),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def watch_parent() -> None:
        _wait_for_stop(conn)
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch_parent, name="parent-watch", daemon=True).start()
    conn.send(("ready", port))
    await stop.wait()
    await asyncio.wait_for(server.stop(0.5), 2.0)


def server_main(
    model: str, max_workers: int, cpu: int | None, repeats: int, conn: Connection
) -> None:
    """Entry point of a server subprocess: pin, calibrate, serve, report the port."""
    if cpu is not None:
        _pin_process(cpu)
    work, work_ms = _make_cpu_work(repeats)
    conn.send(("work_ms", work_ms))
    if model == "threaded":
        _serve_threaded(max_workers, work, conn)
    else:
        asyncio.run(_serve_aio(work, conn))


# --------------------------------------------------------------------------- process handling


@dataclass
class ServerProc:
    label: str
    process: multiprocessing.process.BaseProcess
    conn: Connection
    pid: int
    port: int
    work_ms: float
    cpu_s: float = 0.0  # CPU seconds the server used, read just before it is stopped


def _recv(conn: Connection, timeout: float) -> tuple[str, Any]:
    if not conn.poll(timeout):
        raise TimeoutError(f"server did not answer within {timeout} s")
    message: tuple[str, Any] = conn.recv()
    return message


def start_server(
    label: str,
    model: str,
    max_workers: int,
    cpu: int | None,
    repeats: int,
    procs: list[ServerProc],
) -> ServerProc:
    ctx = multiprocessing.get_context("spawn")
    parent_conn, child_conn = ctx.Pipe()
    process = ctx.Process(
        target=server_main,
        args=(model, max_workers, cpu, repeats, child_conn),
        name=label,
        daemon=True,
    )
    process.start()
    child_conn.close()
    try:
        _, work_ms = _recv(parent_conn, SERVER_START_TIMEOUT_S)
        _, port = _recv(parent_conn, SERVER_START_TIMEOUT_S)
    except BaseException:
        _stop_process(process, parent_conn)
        raise
    assert process.pid is not None
    proc = ServerProc(label, process, parent_conn, process.pid, int(port), float(work_ms))
    procs.append(proc)
    return proc


def _stop_process(process: multiprocessing.process.BaseProcess, conn: Connection) -> None:
    with contextlib.suppress(OSError, ValueError):
        conn.send("stop")
    process.join(3.0)
    if process.is_alive():
        process.terminate()
        process.join(2.0)
    if process.is_alive():
        process.kill()
        process.join(2.0)
    conn.close()


def stop_server(proc: ServerProc) -> None:
    if proc.process.is_alive() or not proc.conn.closed:
        with contextlib.suppress(OSError):
            proc.cpu_s = proc_cpu_s(proc.pid)
        _stop_process(proc.process, proc.conn)


# --------------------------------------------------------------------------- /proc readings


def proc_status(pid: int) -> tuple[int, float]:
    """Thread count and RSS in MiB of ``pid``."""
    threads, rss_kib = 0, 0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("Threads:"):
                threads = int(line.split()[1])
            elif line.startswith("VmRSS:"):
                rss_kib = int(line.split()[1])
    return threads, rss_kib / 1024


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds consumed so far by ``pid`` (all its threads)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def system_busy_s(cpus: set[int]) -> float:
    """CPU seconds spent busy (not idle/iowait) so far on ``cpus``, by any process."""
    total = 0
    with open("/proc/stat") as stat:
        for line in stat:
            name, *values = line.split()
            if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
                ticks = [int(v) for v in values[:8]]
                total += sum(ticks) - ticks[3] - ticks[4]
    return total / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- client side


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass
class Rate:
    """Work counted over measured windows, with the CPU both sides used meanwhile."""

    count: int = 0
    errors: int = 0
    elapsed_s: float = 0.0
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0

    windows: list[float] = field(default_factory=list)  # rate of each window

    def add(self, before: Snapshot, after: Snapshot, count: int) -> None:
        self.windows.append(count / (after.wall_s - before.wall_s))
        self.count += count
        self.elapsed_s += after.wall_s - before.wall_s
        self.server_cpu_s += after.server_cpu_s - before.server_cpu_s
        self.client_cpu_s += after.client_cpu_s - before.client_cpu_s

    @property
    def per_s(self) -> float:
        return self.count / self.elapsed_s if self.elapsed_s else math.nan

    @property
    def server_cores(self) -> float:
        return self.server_cpu_s / self.elapsed_s if self.elapsed_s else math.nan

    @property
    def client_cores(self) -> float:
        return self.client_cpu_s / self.elapsed_s if self.elapsed_s else math.nan

    @property
    def per_server_cpu_s(self) -> float:
        return self.count / self.server_cpu_s if self.server_cpu_s else math.nan


@dataclass(frozen=True)
class Snapshot:
    wall_s: float
    server_cpu_s: float
    client_cpu_s: float

    @classmethod
    def take(cls, server_pid: int) -> Snapshot:
        return cls(time.perf_counter(), proc_cpu_s(server_pid), time.process_time())


@dataclass
class ModelResult:
    label: str
    work_ms: float = math.nan
    unary: Rate = field(default_factory=Rate)
    stream: Rate = field(default_factory=Rate)
    latencies_ms: list[float] = field(default_factory=list)
    idle: dict[str, IdleResult] = field(default_factory=dict)
    cpu: dict[str, CpuResult] = field(default_factory=dict)

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies_ms, 0.50)

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies_ms, 0.99)


@dataclass
class IdleResult:
    opened: int
    threads_before: int
    threads_open: int
    rss_before_mib: float
    rss_open_mib: float
    probe_ok: int
    probe_first_ms: float | None
    recovered_s: float | None


@dataclass
class CpuResult:
    trivial_p50_ms: float
    trivial_p99_ms: float
    trivial_ok: int
    trivial_failed: int
    cpu_calls_per_s: float
    server_cores: float


class Client:
    def __init__(self, port: int) -> None:
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        self.health = health_pb2_grpc.HealthStub(self.channel)
        self.stream = self.channel.unary_stream(f"/{SERVICE}/Stream", None, None)
        self.idle = self.channel.unary_stream(f"/{SERVICE}/Idle", None, None)
        self.cpu = {
            "inline": self.channel.unary_unary(f"/{SERVICE}/Cpu", None, None),
            "offloaded": self.channel.unary_unary(f"/{SERVICE}/CpuOffload", None, None),
        }

    async def check(self, timeout: float = CALL_TIMEOUT_S) -> None:
        await self.health.Check(CHECK_REQUEST, timeout=timeout)

    async def close(self) -> None:
        await self.channel.close(None)


async def measure_unary_window(
    client: Client, pid: int, rate: Rate, warmup_s: float, duration_s: float
) -> None:
    """Keep UNARY_INFLIGHT Health/Check calls in flight; count those ending in the window."""
    done = 0
    end = time.monotonic() + warmup_s + duration_s

    async def worker() -> None:
        nonlocal done
        while time.monotonic() < end:
            try:
                await client.check()
                done += 1
            except grpc.aio.AioRpcError:
                rate.errors += 1

    tasks = [asyncio.create_task(worker()) for _ in range(UNARY_INFLIGHT)]
    try:
        await asyncio.sleep(warmup_s)
        count0, before = done, Snapshot.take(pid)
        await asyncio.sleep(duration_s)
        rate.add(before, Snapshot.take(pid), done - count0)
    finally:
        await asyncio.wait_for(asyncio.gather(*tasks), CALL_TIMEOUT_S + 1)


async def measure_latency_round(client: Client, samples: list[float], warmup: bool) -> None:
    """Sequential Health/Check calls, one at a time."""
    for _ in range(30 if warmup else 3):
        await client.check()
    end = time.monotonic() + LATENCY_ROUND_MAX_S
    for _ in range(LATENCY_CALLS_PER_ROUND):
        if time.monotonic() > end:
            break
        t0 = time.perf_counter()
        await client.check()
        samples.append((time.perf_counter() - t0) * 1000)


async def measure_stream_window(client: Client, pid: int, rate: Rate, duration_s: float) -> None:
    """Read one server stream of small messages for ``duration_s``."""
    call = client.stream(STREAM_MAX_MESSAGES.to_bytes(8, "big"), timeout=duration_s + 5)
    try:
        for _ in range(100):  # warm up: the stream is flowing before the clock starts
            first = await asyncio.wait_for(call.read(), CALL_TIMEOUT_S)
            assert first == STREAM_PAYLOAD
        received = 0
        before = Snapshot.take(pid)
        end = time.monotonic() + duration_s
        while time.monotonic() < end:
            message = await call.read()
            if message is _EOF:
                break
            received += 1
        rate.add(before, Snapshot.take(pid), received)
    finally:
        call.cancel()


async def _first_message(call: Any, deadline: float) -> bool:
    try:
        message = await asyncio.wait_for(call.read(), max(0.01, deadline - time.monotonic()))
    except (TimeoutError, grpc.aio.AioRpcError):
        return False
    return message is not _EOF


async def measure_idle_streams(client: Client, pid: int, kind: str) -> IdleResult:
    """Open IDLE_STREAMS streams that stay open, then see what the server costs and serves."""
    threads_before, rss_before = proc_status(pid)
    timeout = IDLE_OPEN_TIMEOUT_S + IDLE_PROBE_WINDOW_S + 5
    calls: list[Any] = []
    try:
        for _ in range(IDLE_STREAMS):
            if kind == "watch":
                calls.append(client.health.Watch(CHECK_REQUEST, timeout=timeout))
            else:
                calls.append(client.idle(b"", timeout=timeout))
        deadline = time.monotonic() + IDLE_OPEN_TIMEOUT_S
        opened = sum(await asyncio.gather(*(_first_message(c, deadline) for c in calls)))
        await asyncio.sleep(0.2)
        threads_open, rss_open = proc_status(pid)

        probe_ok = 0
        probe_first_ms: float | None = None
        end = time.monotonic() + IDLE_PROBE_WINDOW_S
        while (remaining := end - time.monotonic()) > 0.01:
            t0 = time.perf_counter()
            try:
                await client.check(timeout=remaining)
            except grpc.aio.AioRpcError:
                break
            probe_ok += 1
            if probe_first_ms is None:
                probe_first_ms = (time.perf_counter() - t0) * 1000
    finally:
        for call in calls:
            call.cancel()

    recovered_s: float | None = None
    t0 = time.monotonic()
    while recovered_s is None and time.monotonic() - t0 < 5.0:
        try:
            await client.check(timeout=1.0)
            recovered_s = time.monotonic() - t0
        except grpc.aio.AioRpcError:
            await asyncio.sleep(0.05)
    return IdleResult(
        opened,
        threads_before,
        threads_open,
        rss_before,
        rss_open,
        probe_ok,
        probe_first_ms,
        recovered_s,
    )


async def measure_cpu_contention(client: Client, pid: int, variant: str) -> CpuResult:
    """Latency of a trivial call while CPU_CONCURRENT CPU-heavy calls are kept running."""
    cpu_call = client.cpu[variant]
    stop = False
    cpu_done = 0

    async def background() -> None:
        nonlocal cpu_done
        while not stop:
            try:
                await cpu_call(b"", timeout=CALL_TIMEOUT_S)
                cpu_done += 1
            except grpc.aio.AioRpcError:
                await asyncio.sleep(0.01)

    tasks = [asyncio.create_task(background()) for _ in range(CPU_CONCURRENT)]
    samples: list[float] = []
    failed = 0
    try:
        await asyncio.sleep(CPU_WARMUP_S)
        cpu0, before = cpu_done, Snapshot.take(pid)
        end = time.monotonic() + CPU_DURATION_S
        while time.monotonic() < end:
            t0 = time.perf_counter()
            try:
                await client.check(timeout=2.0)
                samples.append((time.perf_counter() - t0) * 1000)
            except grpc.aio.AioRpcError:
                failed += 1
            await asyncio.sleep(0.005)  # a trickle of trivial calls, not a second load
        after = Snapshot.take(pid)
        cpu_rate = (cpu_done - cpu0) / (after.wall_s - before.wall_s)
        server_cores = (after.server_cpu_s - before.server_cpu_s) / (after.wall_s - before.wall_s)
    finally:
        stop = True
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), CALL_TIMEOUT_S + 1)
    return CpuResult(
        percentile(samples, 0.5),
        percentile(samples, 0.99),
        len(samples),
        failed,
        cpu_rate,
        server_cores,
    )


@dataclass
class Target:
    result: ModelResult
    proc: ServerProc
    client: Client


async def run_interleaved(targets: list[Target]) -> None:
    """Unary throughput, latency and streaming, alternating servers in ABBA rounds."""

    def order(round_no: int) -> list[Target]:
        return targets if round_no % 2 == 0 else targets[::-1]

    step("unary throughput, interleaved")
    for rnd in range(ROUNDS):
        for t in order(rnd):
            warmup = UNARY_WARMUP_S if rnd == 0 else UNARY_RAMP_S
            await measure_unary_window(t.client, t.proc.pid, t.result.unary, warmup, UNARY_WINDOW_S)
    step("sequential latency, interleaved")
    for rnd in range(ROUNDS):
        for t in order(rnd):
            await measure_latency_round(t.client, t.result.latencies_ms, warmup=rnd == 0)
    step("streaming, interleaved")
    for rnd in range(ROUNDS):
        for t in order(rnd):
            await measure_stream_window(t.client, t.proc.pid, t.result.stream, STREAM_WINDOW_S)


async def run_cpu_and_idle(t: Target, cpu_variants: list[str]) -> None:
    for variant in cpu_variants:
        step(f"{t.proc.label}: CPU-heavy handlers ({variant})")
        t.result.cpu[variant] = await measure_cpu_contention(t.client, t.proc.pid, variant)
    for kind in ("watch", "handler"):
        step(f"{t.proc.label}: {IDLE_STREAMS} idle streams ({kind})")
        t.result.idle[kind] = await measure_idle_streams(t.client, t.proc.pid, kind)


async def connect(proc: ServerProc) -> Client:
    client = Client(proc.port)
    try:
        await asyncio.wait_for(client.channel.channel_ready(), CALL_TIMEOUT_S)
    except BaseException:
        await client.close()
        raise
    return client


# --------------------------------------------------------------------------- report


def step(text: str) -> None:
    print(f"  .. {text}", file=sys.stderr, flush=True)


def _f(value: float, digits: int = 2) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.{digits}f}"


def _n(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.0f}"


def _range(rate: Rate) -> str:
    if not rate.windows:
        return "n/a"
    return f"{min(rate.windows):,.0f} - {max(rate.windows):,.0f}"


def _idle_cells(idle: IdleResult | None) -> list[str]:
    if idle is None:
        return ["-"] * 5
    probe = (
        f"{idle.probe_ok} (1st {idle.probe_first_ms:.1f} ms)"
        if idle.probe_first_ms is not None
        else "0 (starved)"
    )
    return [
        f"{idle.opened}/{IDLE_STREAMS}",
        f"{idle.threads_before} -> {idle.threads_open}",
        f"{idle.rss_before_mib:.1f} -> {idle.rss_open_mib:.1f}",
        probe,
        "-" if idle.recovered_s is None else f"{idle.recovered_s:.2f} s",
    ]


def _cpu_cells(cpu: CpuResult | None, missing: str) -> tuple[str, str]:
    if cpu is None:
        return missing, ""
    latency = f"{cpu.trivial_p50_ms:.2f} / {cpu.trivial_p99_ms:.2f}"
    if cpu.trivial_failed:
        latency += f" ({cpu.trivial_failed} timed out)"
    return latency, f"{cpu.cpu_calls_per_s:.1f} / {cpu.server_cores:.2f}"


def print_report(
    threaded: ModelResult, aio: ModelResult, big_pool: IdleResult | None, pinned: str, noise: str
) -> None:
    headers = ["", threaded.label, aio.label]
    rows: list[list[str]] = [
        ["unary calls/s (64 in flight)", _n(threaded.unary.per_s), _n(aio.unary.per_s)],
        [
            "  server CPU / client CPU (cores)",
            f"{_f(threaded.unary.server_cores)} / {_f(threaded.unary.client_cores)}",
            f"{_f(aio.unary.server_cores)} / {_f(aio.unary.client_cores)}",
        ],
        [f"  range over the {ROUNDS} windows", _range(threaded.unary), _range(aio.unary)],
        [
            "  calls per server CPU-second",
            _n(threaded.unary.per_server_cpu_s),
            _n(aio.unary.per_server_cpu_s),
        ],
        ["  failed calls", str(threaded.unary.errors), str(aio.unary.errors)],
        ["sequential call p50 ms", _f(threaded.p50_ms, 3), _f(aio.p50_ms, 3)],
        ["sequential call p99 ms", _f(threaded.p99_ms, 3), _f(aio.p99_ms, 3)],
        ["stream msgs/s (16 B, 1 stream)", _n(threaded.stream.per_s), _n(aio.stream.per_s)],
        [f"  range over the {ROUNDS} windows", _range(threaded.stream), _range(aio.stream)],
        [
            "  server CPU / client CPU (cores)",
            f"{_f(threaded.stream.server_cores)} / {_f(threaded.stream.client_cores)}",
            f"{_f(aio.stream.server_cores)} / {_f(aio.stream.client_cores)}",
        ],
    ]
    idle_labels = [
        "streams that got their 1st message",
        "server threads before -> open",
        "server RSS MiB before -> open",
        f"unary calls served in {IDLE_PROBE_WINDOW_S:.0f} s",
        "unary served again after cancel",
    ]
    for kind, title in (
        ("handler", f"{IDLE_STREAMS} idle streams, generator handler:"),
        ("watch", f"{IDLE_STREAMS} idle streams, stock Health/Watch:"),
    ):
        rows.append([title, "", ""])
        for label, t_cell, a_cell in zip(
            idle_labels,
            _idle_cells(threaded.idle.get(kind)),
            _idle_cells(aio.idle.get(kind)),
            strict=True,
        ):
            rows.append([f"  {label}", t_cell, a_cell])
    rows.append(
        [
            f"trivial call while {CPU_CONCURRENT} x {threaded.work_ms:.0f} ms numpy calls run:",
            "",
            "",
        ]
    )
    for variant, title in (("inline", "handler inline"), ("offloaded", "asyncio.to_thread")):
        missing = "(same handler)" if variant == "offloaded" else "-"
        t_lat, t_rate = _cpu_cells(threaded.cpu.get(variant), missing)
        a_lat, a_rate = _cpu_cells(aio.cpu.get(variant), "-")
        rows.append([f"  {title}: p50 / p99 ms", t_lat, a_lat])
        rows.append([f"  {title}: CPU calls/s / server cores", t_rate, a_rate])

    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(3)]
    line = "-+-".join("-" * w for w in widths)
    print(f"gRPC server models, grpcio {grpc.__version__}, Python {sys.version.split()[0]}")
    print(pinned)
    print(noise)
    print(
        f"CPU handler: the same numpy work in every server, calibrated to {CPU_TARGET_MS:.0f} ms;"
        f" fastest of 5 runs at start: {threaded.work_ms:.1f} ms threaded, {aio.work_ms:.1f} ms aio"
    )
    print(line)
    print(" | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print(line)
    for row in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    print(line)
    if big_pool is not None:
        cells = _idle_cells(big_pool)
        print(
            f"threaded, max_workers={BIG_POOL_MAX_WORKERS}, {IDLE_STREAMS} idle generator "
            f"streams: opened {cells[0]}, threads {cells[1]}, RSS MiB {cells[2]}, "
            f"unary served in {IDLE_PROBE_WINDOW_S:.0f} s: {cells[3]}"
        )


def summary_line(threaded: ModelResult, aio: ModelResult) -> str:
    t_idle = threaded.idle.get("handler")
    a_idle = aio.idle.get("handler")
    a_inline = aio.cpu.get("inline")
    a_off = aio.cpu.get("offloaded")
    nan = math.nan
    return (
        "server_models:"
        f" threaded_unary_per_s={threaded.unary.per_s:.0f}"
        f" aio_unary_per_s={aio.unary.per_s:.0f}"
        f" ratio={threaded.unary.per_s / aio.unary.per_s:.2f}"
        f" threaded_p50_ms={threaded.p50_ms:.3f}"
        f" aio_p50_ms={aio.p50_ms:.3f}"
        f" threaded_stream_msgs_per_s={threaded.stream.per_s:.0f}"
        f" aio_stream_msgs_per_s={aio.stream.per_s:.0f}"
        f" threaded_idle_streams_threads={t_idle.threads_open if t_idle else 'nan'}"
        f" aio_idle_streams_threads={a_idle.threads_open if a_idle else 'nan'}"
        f" aio_inline_cpu_trivial_p50_ms={a_inline.trivial_p50_ms if a_inline else nan:.2f}"
        f" aio_offloaded_cpu_trivial_p50_ms={a_off.trivial_p50_ms if a_off else nan:.2f}"
    )


# --------------------------------------------------------------------------- main


def _choose_cpus() -> tuple[int | None, str]:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, f"pinning: off (only CPU {cpus} available), client and servers share it"
    server_cpu, client_cpu = cpus[0], cpus[1]
    _pin_process(client_cpu)
    return server_cpu, f"pinning: servers on CPU {server_cpu}, load generator on CPU {client_cpu}"


async def main_async(server_cpu: int | None, pinned: str) -> None:
    procs: list[ServerProc] = []
    clients: list[Client] = []
    threaded = ModelResult(f"threaded (max_workers={THREADED_MAX_WORKERS})")
    aio = ModelResult("aio")
    big_pool: IdleResult | None = None
    cpus = set(os.sched_getaffinity(0)) | ({server_cpu} if server_cpu is not None else set())
    busy0, own0, t0 = system_busy_s(cpus), time.process_time(), time.monotonic()
    step("calibrating the CPU-heavy handler")
    repeats = calibrate_repeats(CPU_TARGET_MS)
    try:
        targets: list[Target] = []
        for result, model in ((threaded, "threaded"), (aio, "aio")):
            step(f"starting {result.label} server")
            proc = await asyncio.to_thread(
                start_server,
                result.label,
                model,
                THREADED_MAX_WORKERS,
                server_cpu,
                repeats,
                procs,
            )
            result.work_ms = proc.work_ms
            clients.append(await connect(proc))
            targets.append(Target(result, proc, clients[-1]))
        await run_interleaved(targets)
        await run_cpu_and_idle(targets[0], ["inline"])
        await run_cpu_and_idle(targets[1], ["inline", "offloaded"])
        while clients:
            await clients.pop().close()
        for proc in procs:
            await asyncio.to_thread(stop_server, proc)

        label = f"threaded (max_workers={BIG_POOL_MAX_WORKERS})"
        step(f"starting {label} server")
        proc = await asyncio.to_thread(
            start_server, label, "threaded", BIG_POOL_MAX_WORKERS, server_cpu, repeats, procs
        )
        clients.append(await connect(proc))
        step(f"{label}: {IDLE_STREAMS} idle streams (handler)")
        big_pool = await measure_idle_streams(clients[-1], proc.pid, "handler")
    finally:
        while clients:
            await clients.pop().close()
        for proc in procs:
            await asyncio.to_thread(stop_server, proc)
    elapsed = time.monotonic() - t0
    own = time.process_time() - own0 + sum(p.cpu_s for p in procs)
    foreign = max(0.0, system_busy_s(cpus) - busy0 - own)
    noise = (
        f"noise: other processes used {foreign:.1f} CPU-s of the {len(cpus)} cores' "
        f"{elapsed * len(cpus):.0f} during the run ({foreign / (elapsed * len(cpus)):.0%})"
    )
    print_report(threaded, aio, big_pool, pinned, noise)
    print(summary_line(threaded, aio))


def main() -> None:
    started = time.monotonic()
    server_cpu, pinned = _choose_cpus()
    asyncio.run(main_async(server_cpu, pinned))
    print(f"  .. total {time.monotonic() - started:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
