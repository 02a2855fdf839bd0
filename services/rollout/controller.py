"""One rollout of one service: from starting the idle color to stopping the old one.

1. start the idle color at the new version (locally from its release tree, migrations
   first; on Kubernetes its Deployment with the new image);
2. wait until every replica is ready (grpc.health.v1 SERVING for the service's name:
   asked directly locally, the kubelet's gRPC readiness probe on Kubernetes);
3. smoke calls and a parity check against the live color, straight to each color;
4. wait until Envoy's own health checks see every new host healthy;
5. shift weights, step by step (blue-green: one step to 100), rewriting the route
   configuration the gateway watches and waiting until Envoy serves that version;
   during each step watch the new color's calls by grpc-status in Envoy's stats and
   stop at the first sign that its server errors exceed ``max_error_rate``;
6. drain the old color: no weight, then wait until Envoy sends it no new call for
   ``drain_quiet_s`` and it serves no call but subscriptions (its own per-method
   metrics say which; :mod:`services.rollout.drain`); only then stop it (SIGTERM: it
   turns NOT_SERVING, waits, ends subscriptions UNAVAILABLE so their callers resume on
   the live color, lets other in-flight calls finish, sends GOAWAY and exits).

Any failure rolls back the same way in reverse: weights back to the live color, drain
the new one, stop it. Every rollout ends as a line in the history. Where each step
acts is the platform's (:mod:`services.rollout.platform`): local processes or
Kubernetes; the algorithm is this one for both.

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

from services.rollout import checks, drain, xds
from services.rollout.envoy_admin import AdminError, Gateway
from services.rollout.kubectl import KubectlError
from services.rollout.local import LocalPlatform
from services.rollout.platform import Platform
from services.rollout.processes import LaunchError
from services.rollout.state import TopologyStore

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
    drain_timeout_s: float = 60.0  # then it is stopped whatever is in flight
    stop_timeout_s: float = 45.0
    poll_s: float = 0.1
    migrate: bool = True
    # Credentials for the smoke and parity calls, e.g. (("x-api-key", "..."),).
    call_metadata: tuple[tuple[str, str], ...] = ()
    # The client certificate every check presents where the services demand one.
    client_tls: checks.ClientTls | None = None

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
        platform: Platform | None = None,
    ) -> None:
        self.store = TopologyStore(data_dir)
        self.data_dir = data_dir
        self.platform = platform if platform is not None else LocalPlatform(data_dir)
        self._echo = echo

    def _set_weights(
        self, gateway: Gateway, service: str, weights: dict[str, int], timeout: float
    ) -> None:
        """Publish the split and wait until the gateway serves it."""
        version = self.platform.write_weights(service, weights)
        deadline = time.monotonic() + timeout
        while gateway.route_version() != version:
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
        self,
        service: str,
        version: str,
        options: RolloutOptions,
        source: Path | str | None = None,
    ) -> dict[str, Any]:
        """Roll ``service`` to ``version``; returns the history record (also appended).

        ``source`` is where the version comes from, if not where the platform looks by
        default: a release tree (local) or an image reference (Kubernetes).
        """
        steps = options.weight_steps()
        with self._exclusive(service), self.platform.exclusive(service):
            state = self.platform.service(service)
            live, idle = state.live, state.idle
            if state.weights[live] != 100:
                raise RolloutError(
                    f"{service} is not settled: weights {dict(state.weights)}; "
                    "was a rollout interrupted? (rollout status)"
                )
            release = self.platform.release(
                service, version, None if source is None else str(source)
            )
            run = _Run(service, version, options)
            record: dict[str, Any] = {
                "id": uuid.uuid4().hex[:12],
                "service": service,
                **self.platform.describe(),
                "strategy": options.strategy,
                "steps": list(steps),
                "max_error_rate": options.max_error_rate,
                "from": {"color": live, "version": state.versions[live]},
                "to": {"color": idle, "version": version, "source": release},
                "started_at": datetime.now(UTC).isoformat(),
            }
            try:
                self._deploy(run, live, idle, release, steps)
            except Exception as failure:  # any failure: never leave traffic on the new color
                known = (_Abort, LaunchError, AdminError, KubectlError, OSError)
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

    def _deploy(self, run: _Run, live: str, idle: str, release: str, steps: Sequence[int]) -> None:
        service, options, platform = run.service, run.options, self.platform
        platform.start(
            service, idle, run.version, release, options, functools.partial(self._event, run)
        )

        # Readiness, smoke and parity: straight to the new color, bypassing the gateway.
        try:
            platform.wait_ready(service, idle, options)
        except checks.CheckFailed as failure:
            raise _Abort(str(failure)) from failure
        self._event(run, "ready", color=idle)
        try:
            with (
                platform.endpoints(service, idle) as new_ports,
                platform.endpoints(service, live) as live_ports,
            ):
                metadata = options.call_metadata
                tls = options.client_tls
                live_tls, new_tls = (
                    tls.naming(platform.server_name(service, color)) if tls else None
                    for color in (live, idle)
                )
                calls = sum(
                    checks.smoke(port, service, run.version, idle, metadata, new_tls)
                    for port in new_ports
                )
                self._event(run, "smoke passed", calls=calls)
                samples = checks.SAMPLES[service]
                compared = checks.parity(
                    live_ports[0], new_ports[0], service, samples, metadata, live_tls, new_tls
                )
                self._event(run, "parity passed", samples=compared)
        except checks.CheckFailed as failure:
            raise _Abort(str(failure)) from failure

        new_cluster = xds.cluster_name(service, idle)
        with platform.gateway() as gateway:
            self._wait_healthy_in_envoy(run, gateway, new_cluster, platform.replicas(service, idle))
            for weight in steps:
                weights = {idle: weight, live: 100 - weight}
                self._set_weights(gateway, service, weights, options.route_timeout_s)
                self._event(run, "weights", **weights)
                self._watch(run, gateway, new_cluster, idle)

            platform.mark_live(service, idle)
            # From here the new color is live: a failure to retire the old one is
            # reported, never "rolled back" onto a color that may be half stopped.
            try:
                self._drain(run, gateway, live)
                self._stop_color(run, live)
            except Exception as error:
                self._event(run, "old color not retired cleanly", color=live, error=repr(error))

    def _wait_healthy_in_envoy(self, run: _Run, gateway: Gateway, cluster: str, hosts: int) -> None:
        deadline = time.monotonic() + run.options.ready_timeout_s
        while True:
            health = gateway.host_health(cluster)
            if len(health) == hosts and all(health.values()):
                self._event(run, "healthy in envoy", cluster=cluster)
                return
            if time.monotonic() > deadline:
                raise _Abort(f"envoy never saw {cluster} healthy: {health}")
            time.sleep(run.options.poll_s)

    def _watch(self, run: _Run, gateway: Gateway, cluster: str, color: str) -> None:
        """Observe one step; raise _Abort as soon as the error budget is broken."""
        options = run.options
        before = gateway.calls([cluster])[cluster]
        started = time.monotonic()
        end, give_up = started + options.step_s, started + 4 * options.step_s
        while True:
            time.sleep(options.poll_s)
            now = gateway.calls([cluster])[cluster].since(before)
            if now.errors > options.max_error_rate * now.total:
                raise _Abort(
                    f"{now.errors} server errors in {now.total} calls on {cluster} "
                    f"(max error rate {options.max_error_rate}); by code {now.by_code}"
                )
            if not self.platform.alive(run.service, color):
                raise _Abort(f"a process of {cluster} exited")
            health = gateway.host_health(cluster)
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

    def _drain(self, run: _Run, gateway: Gateway, color: str) -> None:
        """Until ``color`` is drained (:mod:`services.rollout.drain`) or the timeout."""
        options = run.options
        with self.platform.metrics_endpoints(run.service, color) as ports:
            result = drain.wait_drained(
                gateway,
                xds.cluster_name(run.service, color),
                (lambda: drain.read_in_flight(ports)) if ports else None,
                quiet_s=options.drain_quiet_s,
                timeout_s=options.drain_timeout_s,
                poll_s=options.poll_s,
            )
        self._event(run, "drained" if result.drained else "drain timed out", **result.details)

    def _stop_color(self, run: _Run, color: str) -> None:
        graceful = self.platform.stop(run.service, color, run.options.stop_timeout_s)
        self._event(run, "stopped", color=color, graceful=graceful)

    def _roll_back(self, run: _Run, live: str, idle: str) -> None:
        state = self.platform.service(run.service)
        try:
            if state.weights[idle] != 0 or state.live != live:
                with self.platform.gateway() as gateway:
                    weights = {live: 100, idle: 0}
                    self._set_weights(gateway, run.service, weights, run.options.route_timeout_s)
                    self.platform.mark_live(run.service, live)
                    self._event(run, "weights", **weights)
                    self._drain(run, gateway, idle)
        finally:
            self._stop_color(run, idle)


def status(platform: Platform, data_dir: Path) -> dict[str, Any]:
    """Per service and color: version, weight, replicas, health as Envoy sees it; and the
    last rollouts."""
    report = platform.status()
    report["last_rollouts"] = [
        {
            k: r.get(k)
            for k in ("service", "outcome", "reason", "finished_at", "to", "strategy", "platform")
        }
        for r in TopologyStore(data_dir).history()[-5:]
    ]
    return report
