"""The local platform: each color is processes on this machine, Envoy reads watched files.

The topology ``make up`` wrote (:mod:`services.rollout.state`) says where each color
listens and runs; a color starts from a release's source tree (its migrations first)
and stops with SIGTERM (NOT_SERVING, a pause, in-flight calls finish, GOAWAY, exit).
Weights go to the route file Envoy watches, rewritten atomically.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services.rollout import checks, processes, xds
from services.rollout.envoy_admin import AdminError, EnvoyAdmin
from services.rollout.platform import Events, Platform, ServiceView
from services.rollout.state import ColorState, Topology, TopologyStore

if TYPE_CHECKING:
    from services.rollout.controller import RolloutOptions


class LocalPlatform(Platform):
    name = "local"

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.store = TopologyStore(data_dir)

    def _update(self, edit: Callable[[Topology], None]) -> Topology:
        with self.store.locked():
            topology = self.store.load()
            edit(topology)
            self.store.save(topology)
            return topology

    def service(self, service: str) -> ServiceView:
        state = self.store.load().service(service)
        versions = {color: s.version for color, s in state.colors.items()}
        return ServiceView(state.live, dict(state.weights), versions)

    def release(self, service: str, version: str, origin: str | None) -> str:
        source = None if origin is None else Path(origin)
        return str(processes.find_release(service, version, self.data_dir, source))

    def start(
        self,
        service: str,
        color: str,
        version: str,
        release: str,
        options: RolloutOptions,
        events: Events,
    ) -> None:
        topology = self.store.load()
        state = topology.service(service).colors[color]
        if state.running:
            events("stopping leftover", color=color, pids=state.pids)
            graceful = self.stop(service, color, options.stop_timeout_s)
            events("stopped", color=color, graceful=graceful)
        source = Path(release)
        environ = {**topology.environ, "DATA_DIR": topology.data_dir}
        if options.migrate and processes.migrate(service, source, environ):
            events("migrated", source=release)
        log_dir = Path(topology.log_dir)
        pids = processes.start_color(
            service, color, state.ports, source, environ, log_dir, state.metrics_ports
        )

        def started(t: Topology) -> None:
            t.service(service).colors[color] = ColorState(
                list(state.ports), version, release, pids, list(state.metrics_ports)
            )

        self._update(started)
        events("started", color=color, version=version, pids=pids, ports=state.ports)

    def wait_ready(self, service: str, color: str, options: RolloutOptions) -> None:
        state = self.store.load().service(service).colors[color]
        for pid, port in zip(state.pids, state.ports, strict=True):
            checks.wait_serving(
                port,
                service,
                startup_timeout=options.startup_timeout_s,
                ready_timeout=options.ready_timeout_s,
                alive=functools.partial(processes.alive, pid),
                tls=options.client_tls,
            )

    def endpoints(self, service: str, color: str) -> contextlib.AbstractContextManager[list[int]]:
        return contextlib.nullcontext(list(self.store.load().service(service).colors[color].ports))

    def metrics_endpoints(
        self, service: str, color: str
    ) -> contextlib.AbstractContextManager[list[int]]:
        state = self.store.load().service(service).colors[color]
        # Replicas given no metrics port picked a free one: unknown here.
        known = len(state.metrics_ports) == len(state.pids) and all(state.metrics_ports)
        return contextlib.nullcontext(list(state.metrics_ports) if known else [])

    def gateway(self) -> contextlib.AbstractContextManager[EnvoyAdmin]:
        return contextlib.nullcontext(EnvoyAdmin(self.store.load().admin_url))

    def replicas(self, service: str, color: str) -> int:
        return len(self.store.load().service(service).colors[color].ports)

    def write_weights(self, service: str, weights: Mapping[str, int]) -> str:
        version = ""

        def edit(topology: Topology) -> None:
            nonlocal version
            topology.service(service).weights = dict(weights)
            version = topology.next_xds_version()
            xds.write_routes(Path(topology.xds_dir), topology.layout(), version)

        self._update(edit)
        return version

    def alive(self, service: str, color: str) -> bool:
        pids = self.store.load().service(service).colors[color].pids
        return all(processes.alive(pid) for pid in pids)

    def mark_live(self, service: str, color: str) -> None:
        def switched(t: Topology) -> None:
            t.service(service).live = color

        self._update(switched)

    def stop(self, service: str, color: str, timeout: float) -> bool:
        pids = self.store.load().service(service).colors[color].pids
        graceful = processes.stop(pids, timeout)

        def stopped(t: Topology) -> None:
            t.service(service).colors[color].pids = []

        self._update(stopped)
        return graceful

    def status(self) -> dict[str, Any]:
        topology = self.store.load()
        admin = EnvoyAdmin(topology.admin_url, timeout=2.0)
        report: dict[str, Any] = {
            "platform": self.name,
            "gateway_port": topology.gateway_port,
            "services": {},
        }
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
        return report
