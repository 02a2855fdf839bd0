"""One rollout of one service: from starting the idle color to stopping the old one.

1. start the idle color at the new version (its release's migrations first);
2. wait until each of its processes reports SERVING through grpc.health.v1;
3. smoke calls and a parity check against the live color, straight to its ports;
4. wait until Envoy's own health checks see every new host healthy;
5. shift weights, step by step (blue-green: one step to 100), rewriting the watched
   route file and waiting until Envoy serves that version; during each step watch the
   new color's calls by grpc-status in Envoy's stats and stop at the first sign that
   its server errors exceed ``max_error_rate``;
6. drain the old color: no weight, then wait until Envoy has no call in flight to it
   and sends it no new one for ``drain_quiet_s``; only then stop it (SIGTERM: it turns
   NOT_SERVING, waits, lets in-flight calls finish, sends GOAWAY and exits).

Any failure rolls back the same way in reverse: weights back to the live color, drain
the new one, stop it. Every rollout ends as a line in the history.

Through the gateway, the weighted route picks a cluster per call, so moving weights
moves every new call at once, long-lived HTTP/2 connections or not; a server's
max-connection-age (GOAWAY) matters for clients that bypass the gateway.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.rollout import checks, processes, xds
from services.rollout.envoy_admin import AdminError, EnvoyAdmin
from services.rollout.processes import LaunchError
from services.rollout.state import ColorState, Topology, TopologyStore

STRATEGIES = ("blue-green", "canary")
DEFAULT_CANARY_STEPS = (10, 50, 100)


class RolloutError(RuntimeError):
    """The rollout could not start (another one runs, bad arguments, no release)."""


class _Abort(Exception):
    """Roll back: the new color failed a check or broke its error budget."""


@dataclass(frozen=True)
class RolloutOptions:
    strategy: str = "blue-green"
    steps: tuple[int, ...] = ()
    max_error_rate: float = 0.001
    step_s: float = 30.0  # observation time at each weight
    # Calls the new color must have answered before a step may pass: a step without
    # traffic proves nothing. A step waits up to 4 x step_s for them, then rolls back.
    min_step_calls: int = 0
    startup_timeout_s: float = 90.0  # until a new process answers health at all
    ready_timeout_s: float = 60.0  # from its first health answer until SERVING
    route_timeout_s: float = 10.0  # until Envoy serves a rewritten route file
    drain_quiet_s: float = 2.0  # no new call to the old color for this long
    drain_timeout_s: float = 60.0
    stop_timeout_s: float = 45.0
    poll_s: float = 0.1
    migrate: bool = True

    def weight_steps(self) -> tuple[int, ...]:
        if self.strategy not in STRATEGIES:
            raise RolloutError(f"strategy must be one of {', '.join(STRATEGIES)}")
        if self.strategy == "blue-green":
            if self.steps and tuple(self.steps) != (100,):
                raise RolloutError("blue-green moves all traffic at once: no --steps")
            return (100,)
        steps = tuple(self.steps) or DEFAULT_CANARY_STEPS
        if any(not 0 < s <= 100 for s in steps) or list(steps) != sorted(set(steps)):
            raise RolloutError(f"steps must rise strictly within 1..100: {steps}")
        return steps if steps[-1] == 100 else (*steps, 100)


@dataclass
class _Run:
    service: str
    version: str
    options: RolloutOptions
    started: float = field(default_factory=time.monotonic)
    events: list[dict[str, Any]] = field(default_factory=list)


class RolloutController:
    def __init__(
        self,
        data_dir: Path,
        *,
        echo: Callable[[str], None] = lambda _line: None,
    ) -> None:
        self.store = TopologyStore(data_dir)
        self.data_dir = data_dir
        self._echo = echo

    # --- topology edits -----------------------------------------------------------------

    def _update(self, edit: Callable[[Topology], None]) -> Topology:
        with self.store.locked():
            topology = self.store.load()
            edit(topology)
            self.store.save(topology)
            return topology

    def _set_weights(self, service: str, weights: dict[str, int], timeout: float) -> None:
        """Rewrite the watched route file and wait until Envoy serves it."""
        version = ""

        def edit(topology: Topology) -> None:
            nonlocal version
            topology.service(service).weights = dict(weights)
            version = topology.next_xds_version()
            xds.write_routes(Path(topology.xds_dir), topology.layout(), version)

        topology = self._update(edit)
        admin = EnvoyAdmin(topology.admin_url)
        deadline = time.monotonic() + timeout
        while admin.route_version() != version:
            if time.monotonic() > deadline:
                raise AdminError(f"envoy did not load route version {version} in {timeout} s")
            time.sleep(0.02)

    # --- one rollout --------------------------------------------------------------------

    @contextlib.contextmanager
    def _exclusive(self, service: str) -> Iterator[None]:
        self.store.directory.mkdir(parents=True, exist_ok=True)
        with (self.store.directory / f"rollout-{service}.lock").open("a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RolloutError(f"a rollout of {service} is already running") from None
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _event(self, run: _Run, event: str, **details: Any) -> None:
        elapsed = round(time.monotonic() - run.started, 3)
        run.events.append({"t": elapsed, "event": event, **details})
        shown = " ".join(f"{k}={v}" for k, v in details.items())
        self._echo(f"[{elapsed:7.2f}s] {run.service}: {event} {shown}".rstrip())

    def run(
        self, service: str, version: str, options: RolloutOptions, source: Path | None = None
    ) -> dict[str, Any]:
        """Roll ``service`` to ``version``; returns the history record (also appended)."""
        steps = options.weight_steps()
        with self._exclusive(service):
            topology = self.store.load()
            state = topology.service(service)
            live, idle = state.live, state.idle
            if state.weights[live] != 100:
                raise RolloutError(
                    f"{service} is not settled: weights {state.weights}; "
                    "was a rollout interrupted? (rollout status)"
                )
            release = processes.find_release(service, version, self.data_dir, source)
            run = _Run(service, version, options)
            record: dict[str, Any] = {
                "id": uuid.uuid4().hex[:12],
                "service": service,
                "strategy": options.strategy,
                "steps": list(steps),
                "max_error_rate": options.max_error_rate,
                "from": {"color": live, "version": state.colors[live].version},
                "to": {"color": idle, "version": version, "source": str(release)},
                "started_at": datetime.now(UTC).isoformat(),
            }
            try:
                self._deploy(run, topology, release, steps)
            except Exception as failure:  # any failure: never leave traffic on the new color
                known = (_Abort, LaunchError, AdminError, OSError)
                reason = str(failure) if isinstance(failure, known) else repr(failure)
                self._event(run, "rolling back", reason=reason)
                try:
                    self._roll_back(run, live, idle)
                except Exception as error:  # keep the record; the operator must look
                    self._event(run, "rollback failed", error=repr(error))
                    record.update(outcome="rollback_failed", reason=f"{reason}; {error!r}")
                else:
                    record.update(outcome="rolled_back", reason=reason)
            else:
                record.update(outcome="completed", reason="")
            record["finished_at"] = datetime.now(UTC).isoformat()
            record["duration_s"] = round(time.monotonic() - run.started, 3)
            record["events"] = run.events
            self.store.append_history(record)
            self._event(run, record["outcome"])
            return record

    def _deploy(self, run: _Run, topology: Topology, release: Path, steps: Sequence[int]) -> None:
        service, options = run.service, run.options
        state = topology.service(service)
        live, idle = state.live, state.idle
        if state.colors[idle].running:
            self._event(run, "stopping leftover", color=idle, pids=state.colors[idle].pids)
            self._stop_color(run, idle)
        environ = {**topology.environ, "DATA_DIR": topology.data_dir}
        if options.migrate and processes.migrate(service, release, environ):
            self._event(run, "migrated", source=str(release))
        ports = state.colors[idle].ports
        pids = processes.start_color(service, idle, ports, release, environ, Path(topology.log_dir))

        def started(t: Topology) -> None:
            t.service(service).colors[idle] = ColorState(
                list(ports), run.version, str(release), pids
            )

        self._update(started)
        self._event(run, "started", color=idle, version=run.version, pids=pids, ports=ports)

        # Readiness, smoke and parity: straight to the new processes.
        for pid, port in zip(pids, ports, strict=True):
            try:
                checks.wait_serving(
                    port,
                    service,
                    startup_timeout=options.startup_timeout_s,
                    ready_timeout=options.ready_timeout_s,
                    alive=functools.partial(processes.alive, pid),
                )
            except checks.CheckFailed as failure:
                raise _Abort(str(failure)) from failure
        self._event(run, "ready", color=idle)
        live_port = state.colors[live].ports[0]
        try:
            calls = sum(checks.smoke(port, service, run.version, idle) for port in ports)
            self._event(run, "smoke passed", calls=calls)
            compared = checks.parity(live_port, ports[0], service, checks.SAMPLES[service])
            self._event(run, "parity passed", samples=compared)
        except checks.CheckFailed as failure:
            raise _Abort(str(failure)) from failure

        admin = EnvoyAdmin(topology.admin_url)
        new_cluster = xds.cluster_name(service, idle)
        self._wait_healthy_in_envoy(run, admin, new_cluster, len(ports))

        for weight in steps:
            self._set_weights(service, {idle: weight, live: 100 - weight}, options.route_timeout_s)
            self._event(run, "weights", **{idle: weight, live: 100 - weight})
            self._watch(run, admin, new_cluster, pids)

        def switched(t: Topology) -> None:
            t.service(service).live = idle

        self._update(switched)
        # From here the new color is live: a failure to retire the old one is reported,
        # never "rolled back" onto a color that may be half stopped.
        try:
            self._drain(run, admin, xds.cluster_name(service, live))
            self._stop_color(run, live)
        except Exception as error:
            self._event(run, "old color not retired cleanly", color=live, error=repr(error))

    def _wait_healthy_in_envoy(
        self, run: _Run, admin: EnvoyAdmin, cluster: str, hosts: int
    ) -> None:
        deadline = time.monotonic() + run.options.ready_timeout_s
        while True:
            health = admin.host_health(cluster)
            if len(health) == hosts and all(health.values()):
                self._event(run, "healthy in envoy", cluster=cluster)
                return
            if time.monotonic() > deadline:
                raise _Abort(f"envoy never saw {cluster} healthy: {health}")
            time.sleep(run.options.poll_s)

    def _watch(self, run: _Run, admin: EnvoyAdmin, cluster: str, pids: Sequence[int]) -> None:
        """Observe one step; raise _Abort as soon as the error budget is broken."""
        options = run.options
        before = admin.calls([cluster])[cluster]
        started = time.monotonic()
        end, give_up = started + options.step_s, started + 4 * options.step_s
        while True:
            time.sleep(options.poll_s)
            now = admin.calls([cluster])[cluster].since(before)
            if now.errors > options.max_error_rate * now.total:
                raise _Abort(
                    f"{now.errors} server errors in {now.total} calls on {cluster} "
                    f"(max error rate {options.max_error_rate}); by code {now.by_code}"
                )
            if not all(processes.alive(pid) for pid in pids):
                raise _Abort(f"a process of {cluster} exited")
            health = admin.host_health(cluster)
            if not health or not all(health.values()):
                raise _Abort(f"envoy sees {cluster} unhealthy: {health}")
            if time.monotonic() >= end and now.total >= options.min_step_calls:
                self._event(run, "step passed", calls=now.total, errors=now.errors)
                return
            if time.monotonic() >= give_up:
                raise _Abort(
                    f"only {now.total} calls reached {cluster} in {4 * options.step_s:.0f} s; "
                    f"{options.min_step_calls} needed to judge the step"
                )

    def _drain(self, run: _Run, admin: EnvoyAdmin, cluster: str) -> None:
        """Until no call is in flight to ``cluster`` and none arrives for a while."""
        options = run.options
        deadline = time.monotonic() + options.drain_timeout_s
        _, total = admin.upstream_requests(cluster)
        quiet_since = time.monotonic()
        while True:
            time.sleep(options.poll_s)
            now_active, now_total = admin.upstream_requests(cluster)
            if now_total != total or now_active:
                total, quiet_since = now_total, time.monotonic()
            elif time.monotonic() - quiet_since >= options.drain_quiet_s:
                self._event(run, "drained", cluster=cluster, upstream_rq_total=total)
                return
            if time.monotonic() > deadline:
                self._event(run, "drain timed out", cluster=cluster, active=now_active)
                return

    def _stop_color(self, run: _Run, color: str) -> None:
        topology = self.store.load()
        state = topology.service(run.service).colors[color]
        graceful = processes.stop(state.pids, run.options.stop_timeout_s)

        def stopped(t: Topology) -> None:
            t.service(run.service).colors[color].pids = []

        self._update(stopped)
        self._event(run, "stopped", color=color, graceful=graceful)

    def _roll_back(self, run: _Run, live: str, idle: str) -> None:
        topology = self.store.load()
        state = topology.service(run.service)
        try:
            if state.weights[idle] != 0 or state.live != live:
                self._set_weights(run.service, {live: 100, idle: 0}, run.options.route_timeout_s)

                def restored(t: Topology) -> None:
                    t.service(run.service).live = live

                self._update(restored)
                self._event(run, "weights", **{live: 100, idle: 0})
                self._drain(
                    run, EnvoyAdmin(topology.admin_url), xds.cluster_name(run.service, idle)
                )
        finally:
            self._stop_color(run, idle)


def status(data_dir: Path) -> dict[str, Any]:
    """Per service and color: version, weight, processes, health as Envoy sees it."""
    store = TopologyStore(data_dir)
    topology = store.load()
    admin = EnvoyAdmin(topology.admin_url, timeout=2.0)
    report: dict[str, Any] = {"gateway_port": topology.gateway_port, "services": {}}
    for name, state in topology.services.items():
        colors = {}
        for color, color_state in state.colors.items():
            try:
                health = admin.host_health(xds.cluster_name(name, color))
            except AdminError as error:
                health = {"envoy": False}
                report["envoy_error"] = str(error)
            running = [p for p in color_state.pids if processes.alive(p)]
            colors[color] = {
                "version": color_state.version,
                "weight": state.weights[color],
                "live": color == state.live,
                "processes": running,
                "healthy_hosts": sum(health.values()),
                "hosts": len(health),
            }
        report["services"][name] = colors
    history = store.history()
    report["last_rollouts"] = [
        {k: r.get(k) for k in ("service", "outcome", "reason", "finished_at", "to", "strategy")}
        for r in history[-5:]
    ]
    return report
