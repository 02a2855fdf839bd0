"""The deployed topology, shared by ``make up`` and the ``rollout`` command.

One JSON file under the data directory (``<data_dir>/rollout/topology.json``) says, per
service, where each color listens, which version it runs (and from which source tree),
its processes, the weights the gateway applies and which color is live; plus where the
gateway's watched xDS files and admin interface are. Every change is a read-modify-write
under an exclusive lock and lands by atomic rename, so a crashed command never leaves a
half-written file and two commands never interleave.

The history of rollouts is a JSON-lines file next to it (``history.jsonl``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from services.rollout.xds import COLORS, HealthCheckTiming, ServiceLayout

STATE_DIR = "rollout"
TOPOLOGY_FILE = "topology.json"
HISTORY_FILE = "history.jsonl"


class StateError(RuntimeError):
    """No topology where one was expected, or it does not say what is asked."""


@dataclass
class ColorState:
    ports: list[int]
    version: str = ""
    source: str = ""  # the tree it runs from (its ``services/`` package)
    pids: list[int] = field(default_factory=list)
    # Prometheus port of each replica; none given: each picks a free one.
    metrics_ports: list[int] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return bool(self.pids)


@dataclass
class ServiceState:
    colors: dict[str, ColorState]
    live: str = "blue"
    weights: dict[str, int] = field(default_factory=lambda: {"blue": 100, "green": 0})

    @property
    def idle(self) -> str:
        return next(c for c in COLORS if c != self.live)

    def layout(self) -> ServiceLayout:
        return ServiceLayout(
            {color: tuple(state.ports) for color, state in self.colors.items()},
            dict(self.weights),
        )


@dataclass
class Topology:
    data_dir: str
    log_dir: str
    admin_url: str  # Envoy's admin interface (127.0.0.1 only)
    gateway_port: int
    xds_dir: str  # the directory Envoy watches for rds.yaml and cds.yaml
    services: dict[str, ServiceState]
    xds_version: int = 0
    # Variables every service process gets (DATA_DIR, APP_ENV, server timings ...).
    environ: dict[str, str] = field(default_factory=dict)
    health_check_interval_s: float = 5.0
    health_check_timeout_s: float = 1.0

    def service(self, name: str) -> ServiceState:
        try:
            return self.services[name]
        except KeyError:
            raise StateError(
                f"no service {name!r} in the topology; one of {', '.join(self.services)}"
            ) from None

    def layout(self) -> dict[str, ServiceLayout]:
        return {name: service.layout() for name, service in self.services.items()}

    def timing(self) -> HealthCheckTiming:
        if self.health_check_interval_s == HealthCheckTiming().interval_s:
            return HealthCheckTiming(timeout_s=self.health_check_timeout_s)
        return HealthCheckTiming.fast(self.health_check_interval_s, self.health_check_timeout_s)

    def next_xds_version(self) -> str:
        self.xds_version += 1
        return str(self.xds_version)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> Topology:
        services = {
            name: ServiceState(
                colors={c: ColorState(**s) for c, s in service["colors"].items()},
                live=service["live"],
                weights=dict(service["weights"]),
            )
            for name, service in document["services"].items()
        }
        return cls(**{**document, "services": services})


def state_dir(data_dir: Path) -> Path:
    return data_dir / STATE_DIR


def _atomic_write_json(path: Path, document: Any) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as f:
            json.dump(document, f, indent=2)
            f.write("\n")
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


class TopologyStore:
    """Reads and writes the topology file of one data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.directory = state_dir(data_dir)
        self.path = self.directory / TOPOLOGY_FILE
        self.history_path = self.directory / HISTORY_FILE

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> Topology:
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise StateError(
                f"no topology at {self.path}: start the suite first (make up), "
                "or pass the --data-dir it runs with"
            ) from None
        return Topology.from_json(document)

    def save(self, topology: Topology) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        _atomic_write_json(self.path, topology.to_json())

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive across processes: hold it for every read-modify-write."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / "topology.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def append_history(self, record: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record, sort_keys=True)
        with self.history_path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    def history(self) -> list[dict[str, Any]]:
        try:
            lines = self.history_path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in lines if line.strip()]
