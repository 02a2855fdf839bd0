"""A local rollout topology for the gateway tests: real processes behind a real Envoy.

:func:`local_topology` starts one service's blue color (``python -m services.<name>``
from a release tree) and an Envoy in front of it, with clusters for every service (the
others point at closed ports), and writes the controller's topology file saying so.
A test then drives :class:`~services.rollout.controller.RolloutController` on it as
``rollout`` would. Everything the topology records is stopped afterwards.

A "new version" is a release tree: a copy of ``services/`` and ``config/`` whose
service VERSION says so, optionally with a test-only defect (tests/gateway/faults.py).
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.devstack.envoy import EnvoyProcess
from services.devstack.suite import free_ports
from services.rollout import processes
from services.rollout.checks import wait_serving
from services.rollout.controller import RolloutOptions
from services.rollout.state import ColorState, ServiceState, Topology, TopologyStore
from tests.harness import THREADED_INSPECTION

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("scheduling", "quality", "maintenance")
HEALTH_CHECK_INTERVAL_S = 0.2
SERVICE_ENVIRON = {
    "APP_ENV": "development",
    "MFG_READINESS_INTERVAL_S": "0.2",
    # SIGTERM: NOT_SERVING, keep serving 0.3 s, then up to 3 s for in-flight calls.
    "MFG_SERVER__SHUTDOWN_DELAY_S": "0.3",
    "MFG_SERVER__GRACE_PERIOD_S": "3",
    "MFG_METRICS__PORT": "0",
    # The rollouts here carry charts and service info, never an image: inspection worker
    # processes would only cost each started color seconds of CPU.
    **THREADED_INSPECTION,
}


def rollout_options(strategy: str, **overrides: Any) -> RolloutOptions:
    """The controller's options with every wait sized for a local, loaded machine."""
    values: dict[str, Any] = {
        "strategy": strategy,
        "step_s": 1.5,
        "min_step_calls": 5,
        "startup_timeout_s": 60.0,
        "ready_timeout_s": 3.0,
        "drain_quiet_s": 0.5,
        "drain_timeout_s": 10.0,
        "stop_timeout_s": 10.0,
        "poll_s": 0.1,
        **overrides,
    }
    return RolloutOptions(**values)


def make_release(root: Path, service: str, version: str, fault: str | None = None) -> Path:
    """A copy of services/ and config/ with ``service`` at ``version``, maybe with a defect."""
    tree = root / "releases" / version
    shutil.copytree(
        ROOT / "services", tree / "services", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(ROOT / "config", tree / "config")
    (tree / "services" / service / "VERSION").write_text(version + "\n", encoding="utf-8")
    if fault is not None:
        shutil.copy(Path(__file__).with_name("faults.py"), tree / "rollout_fault.py")
        (tree / "sitecustomize.py").write_text(
            f"import rollout_fault\n\nrollout_fault.install({fault!r})\n", encoding="utf-8"
        )
    return tree


def wait_until_serving(service: str, port: int, pid: int) -> None:
    wait_serving(
        port, service, startup_timeout=60, ready_timeout=10, alive=lambda: processes.alive(pid)
    )


@dataclass
class LocalTopology:
    service: str
    root: Path
    data_dir: Path
    envoy: EnvoyProcess

    @property
    def store(self) -> TopologyStore:
        return TopologyStore(self.data_dir)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.envoy.port}"


def _idle(blue: int, green: int) -> ServiceState:
    return ServiceState({"blue": ColorState([blue]), "green": ColorState([green])})


@contextlib.contextmanager
def local_topology(
    root: Path, service: str, version: str, release: Path, environ: Mapping[str, str]
) -> Iterator[LocalTopology]:
    """``service``'s blue color at ``version`` (from ``release``, migrated) behind Envoy."""
    data_dir, log_dir = root / "var", root / "var" / "logs"
    blue_port, green_port, blue_metrics, green_metrics, *unused = free_ports(8)
    environ = {**environ, "DATA_DIR": str(data_dir)}
    processes.migrate(service, release, environ)
    pids = processes.start_color(
        service, "blue", [blue_port], release, environ, log_dir, [blue_metrics]
    )
    services = {
        name: _idle(unused.pop(), unused.pop())  # not run: their ports are closed
        for name in SERVICES
        if name != service
    }
    services[service] = ServiceState(
        colors={
            # Metrics on known ports: the controller's drain reads the calls in flight.
            "blue": ColorState([blue_port], version, str(release), pids, [blue_metrics]),
            "green": ColorState([green_port], metrics_ports=[green_metrics]),
        }
    )
    envoy = EnvoyProcess(
        {name: state.layout() for name, state in services.items()},
        listen_host="127.0.0.1",
        health_check_interval=HEALTH_CHECK_INTERVAL_S,
        health_check_timeout=1.0,
        concurrency=1,
        xds_dir=data_dir / "gateway" / "xds",
    )
    store = TopologyStore(data_dir)
    try:
        wait_until_serving(service, blue_port, pids[0])
        envoy.start()
        store.save(
            Topology(
                data_dir=str(data_dir),
                log_dir=str(log_dir),
                admin_url=envoy.admin_url,
                gateway_port=envoy.port,
                xds_dir=str(envoy.xds_dir),
                services=services,
                xds_version=envoy.xds_version,
                environ=environ,
                health_check_interval_s=HEALTH_CHECK_INTERVAL_S,
                health_check_timeout_s=1.0,
            )
        )
        yield LocalTopology(service, root, data_dir, envoy)
    finally:
        envoy.stop()
        every = set(pids)
        if store.exists():
            for state in store.load().services.values():
                for color in state.colors.values():
                    every.update(color.pids)
        processes.stop(sorted(every), timeout=10)
