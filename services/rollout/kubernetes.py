"""The Kubernetes platform: each color is a Deployment, the split is a ConfigMap.

What k8s/ (rendered by docker/render.py) lays out, per service: Deployments
``<service>-blue`` and ``<service>-green``, each behind a headless Service of the same
name, which is also the gateway's cluster for that color (its DNS name). The gateway's
route file (``rds.yaml``) lives in the ConfigMap ``gateway-routes``, projected into the
directory Envoy watches; deploy.sh creates it once and leaves it to this command.

- start: the idle Deployment's image set to the new version's, then scaled to the live
  color's replica count (scaling a color to 0 switches its HorizontalPodAutoscaler
  off; scaling it up switches it back on);
- ready: ``kubectl rollout status``, then every pod's Ready condition, which is the
  kubelet's native gRPC readiness probe on the service's name;
- smoke and parity: through a port-forward to each color's Service, as locally;
- drain: the calls in flight on each pod of the old color from its metrics endpoint
  (the container port named ``metrics``), through a port-forward per pod; where that
  fails, Envoy's counts alone decide (:mod:`services.rollout.drain`);
- weights: the whole route file rendered again with the new split
  (:mod:`services.rollout.route_file`, on :func:`services.rollout.xds.render_routes`),
  written back with the ConfigMap's resourceVersion (a replace that fails if anyone
  changed it in between, so two rollouts of different services never lose each
  other's split); the kubelet swaps the file and Envoy reloads it, which can take a
  minute (the kubelet's sync period), hence ``route_timeout_s``;
- one rollout per service at a time, wherever it runs: an annotation on the service's
  blue Deployment (:meth:`KubernetesPlatform.exclusive`);
- statistics and health: every ready gateway pod's admin interface through a
  port-forward to its localhost:9901, read as one (:class:`EnvoyFleet`). A port-forward
  rather than ``kubectl exec ... curl``: the Envoy image need not carry curl, the admin
  stays bound to the pod's localhost, and the reads are the same HTTP as locally;
- retire: scale to 0, the pods drain as their preStop and termination grace say.

Migrations are not run here: deploy.sh's migrations Job applies them before the switch.
The live color is the one with all the weight: there is nothing else to record.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import yaml

from services.rollout import contract, xds
from services.rollout.checks import CheckFailed
from services.rollout.controller import RolloutError, RolloutOptions
from services.rollout.envoy_admin import AdminError, EnvoyAdmin, EnvoyFleet
from services.rollout.kubectl import Kubectl, KubectlError
from services.rollout.platform import Events, Platform, ServiceView
from services.rollout.processes import LaunchError
from services.rollout.route_file import RouteFileError, render_route_file, route_weights

ROUTES_CONFIGMAP = "gateway-routes"
NAME_LABEL = "app.kubernetes.io/name"
COLOR_LABEL = "app.kubernetes.io/color"
GATEWAY_SELECTOR = f"{NAME_LABEL}=gateway"
LOCK_ANNOTATION = "manufacturing-ai/rollout"
# deploy.sh tags images <version>-<git revision>[-dirty]; CI by revision, or the version.
_REVISION_SUFFIX = re.compile(r"-(?:[0-9a-f]{7,40}|unknown)(?:-dirty)?$")
_REPLACE_ATTEMPTS = 5


def image_version(image: str) -> str:
    """The service version an image reference is tagged with ('' without a tag)."""
    name = image.split("@", 1)[0]
    repository, _, tag = name.rpartition(":")
    if not repository or "/" in tag:  # "registry:5000/service" has no tag
        return ""
    return _REVISION_SUFFIX.sub("", tag)


def image_repository(image: str) -> str:
    name = image.split("@", 1)[0]
    repository, _, tag = name.rpartition(":")
    return name if not repository or "/" in tag else repository


def _admin_port() -> int:
    """Envoy's admin port, from the bootstrap the gateway-bootstrap ConfigMap carries
    (gateway/envoy.yaml, beside the committed xDS files)."""
    bootstrap = yaml.safe_load((xds.COMMITTED_DIR.parent / "envoy.yaml").read_text("utf-8"))
    return int(bootstrap["admin"]["address"]["socket_address"]["port_value"])


def _live(weights: Mapping[str, int]) -> str:
    return max(xds.COLORS, key=lambda color: weights[color])


def _ready(pod: Mapping[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _current(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pods not on their way out (an old ReplicaSet's pods terminating)."""
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def _metrics_port(pod: Mapping[str, Any]) -> int:
    """The container port named ``metrics`` (k8s/base/services/*.yaml)."""
    for container in pod.get("spec", {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == "metrics":
                return int(port["containerPort"])
    raise KubectlError(f"pod {pod['metadata']['name']} has no container port named metrics")


def _restarts(pod: Mapping[str, Any]) -> int:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    return sum(int(s.get("restartCount", 0)) for s in statuses)


def _why_unready(pod: Mapping[str, Any]) -> str:
    reasons = [
        f"{c.get('reason') or c.get('type')}: {c.get('message', '')}".strip(": ")
        for c in pod.get("status", {}).get("conditions") or []
        if c.get("type") == "Ready" and c.get("status") != "True"
    ]
    for status in pod.get("status", {}).get("containerStatuses") or []:
        waiting = (status.get("state") or {}).get("waiting")
        if waiting:
            reasons.append(f"{status.get('name')} {waiting.get('reason', 'waiting')}")
    return f"{pod['metadata']['name']} ({'; '.join(reasons) or 'not ready'})"


class KubernetesPlatform(Platform):
    name = "kubernetes"
    route_timeout_s = 120.0  # the kubelet refreshes a mounted ConfigMap within ~1 min
    poll_s = 1.0  # every poll is a kubectl call and HTTP over port-forwards

    def __init__(self, namespace: str, kubectl: Kubectl | None = None) -> None:
        if not namespace:
            raise KubectlError("the kubernetes platform needs a namespace (--namespace)")
        self.namespace = namespace
        self.kubectl = kubectl if kubectl is not None else Kubectl(namespace)
        # Restart count of each pod of a color once it was ready: a restart since then
        # is a crash under traffic.
        self._baseline: dict[tuple[str, str], dict[str, int]] = {}

    def describe(self) -> dict[str, str]:
        return {"platform": self.name, "namespace": self.namespace}

    @contextlib.contextmanager
    def exclusive(self, service: str) -> Iterator[None]:
        """An annotation on the service's blue Deployment: ``kubectl annotate`` without
        --overwrite sets it only if absent, so one rollout per service in the namespace,
        wherever it runs. Left behind by a killed command, it names where that ran."""
        target = f"deployment/{xds.cluster_name(service, xds.COLORS[0])}"
        holder = f"{socket.gethostname()} pid {os.getpid()} since {datetime.now(UTC):%FT%TZ}"
        try:
            self.kubectl.run("annotate", target, f"{LOCK_ANNOTATION}={holder}")
        except KubectlError as error:
            if "already has a value" not in str(error):
                raise
            raise RolloutError(
                f"a rollout of {service} is already running in {self.namespace} ({error}); "
                f"if none is, remove the lock: kubectl -n {self.namespace} annotate "
                f"{target} {LOCK_ANNOTATION}-"
            ) from None
        try:
            yield
        finally:
            self.kubectl.run("annotate", target, f"{LOCK_ANNOTATION}-")

    # --- reading the cluster ---------------------------------------------------------

    def _routes(self) -> tuple[dict[str, Any], Any, dict[str, dict[str, int]]]:
        """The gateway-routes ConfigMap, its route file parsed, and the split it says."""
        configmap: dict[str, Any] = self.kubectl.get("configmap", ROUTES_CONFIGMAP)
        try:
            document = yaml.safe_load((configmap.get("data") or {})[xds.RDS_FILE])
            return configmap, document, route_weights(document)
        except (KeyError, yaml.YAMLError, RouteFileError) as error:
            raise KubectlError(f"{ROUTES_CONFIGMAP}: unreadable {xds.RDS_FILE}: {error}") from None

    def _deployment(self, service: str, color: str) -> dict[str, Any]:
        deployment: dict[str, Any] = self.kubectl.get(
            "deployment", xds.cluster_name(service, color)
        )
        return deployment

    def _pods(self, service: str, color: str) -> list[dict[str, Any]]:
        selector = f"{NAME_LABEL}={service},{COLOR_LABEL}={color}"
        pods: list[dict[str, Any]] = self.kubectl.get("pods", "--selector", selector)["items"]
        return _current(pods)

    @staticmethod
    def _image(deployment: Mapping[str, Any]) -> str:
        return str(deployment["spec"]["template"]["spec"]["containers"][0]["image"])

    def service(self, service: str) -> ServiceView:
        _, _, split = self._routes()
        weights = split[service]
        versions = {
            color: image_version(self._image(self._deployment(service, color)))
            for color in xds.COLORS
        }
        return ServiceView(_live(weights), weights, versions)

    # --- a rollout's steps -------------------------------------------------------------

    def release(self, service: str, version: str, origin: str | None) -> str:
        """``origin`` (--image) or the live color's image repository tagged ``version``."""
        if origin is None:
            live = self.service(service).live
            origin = f"{image_repository(self._image(self._deployment(service, live)))}:{version}"
        tagged = image_version(origin)
        if tagged and tagged != version:
            raise LaunchError(f"image {origin} is tagged for {tagged}, not {version}")
        return origin

    def start(
        self,
        service: str,
        color: str,
        version: str,
        release: str,
        options: RolloutOptions,
        events: Events,
    ) -> None:
        name = xds.cluster_name(service, color)
        live = next(c for c in xds.COLORS if c != color)
        container = self._deployment(service, color)["spec"]["template"]["spec"]["containers"][0]
        # As many as serve now (the autoscaler's count); at least one.
        replicas = max(1, int(self._deployment(service, live)["spec"].get("replicas") or 0))
        # The image first: pods of the old one must not start just to be replaced.
        self.kubectl.run("set", "image", f"deployment/{name}", f"{container['name']}={release}")
        self.kubectl.run("scale", f"deployment/{name}", f"--replicas={replicas}")
        events("started", color=color, version=version, image=release, replicas=replicas)

    def wait_ready(self, service: str, color: str, options: RolloutOptions) -> None:
        name = xds.cluster_name(service, color)
        timeout = options.startup_timeout_s + options.ready_timeout_s
        try:
            self.kubectl.run(
                "rollout", "status", f"deployment/{name}", f"--timeout={timeout:.0f}s",
                timeout=timeout + 30,
            )  # fmt: skip
        except KubectlError as error:
            unready = [_why_unready(p) for p in self._pods(service, color) if not _ready(p)]
            raise CheckFailed(
                f"readiness: {name} not ready within {timeout:.0f} s: {', '.join(unready) or error}"
            ) from error
        pods = self._pods(service, color)
        unready = [_why_unready(p) for p in pods if not _ready(p)]
        if unready or not pods:
            raise CheckFailed(f"readiness: {name}: {', '.join(unready) or 'no pods'}")
        self._baseline[(service, color)] = {p["metadata"]["name"]: _restarts(p) for p in pods}

    @contextlib.contextmanager
    def endpoints(self, service: str, color: str) -> Iterator[list[int]]:
        name = xds.cluster_name(service, color)
        ports = self.kubectl.get("service", name)["spec"]["ports"]
        port = next((int(p["port"]) for p in ports if p.get("name") == "grpc"), None)
        if port is None:
            raise KubectlError(f"service {name} has no port named grpc")
        with self.kubectl.port_forward(f"service/{name}", port) as local_port:
            yield [local_port]

    def server_name(self, service: str, color: str) -> str:
        # Each color's certificate names its Service (k8s/components/service-mtls), the
        # name the gateway checks too; the checks dial it through a port-forward.
        return xds.cluster_name(service, color)

    @contextlib.contextmanager
    def metrics_endpoints(self, service: str, color: str) -> Iterator[list[int]]:
        """A port-forward to each pod's metrics port; none at all if any cannot be had
        (the drain then judges by the gateway: it must never fail for want of them)."""
        with contextlib.ExitStack() as forwards:
            try:
                pods = self._pods(service, color)
                targets = [(f"pod/{p['metadata']['name']}", _metrics_port(p)) for p in pods]
                ports = [
                    forwards.enter_context(self.kubectl.port_forward(target, port))
                    for target, port in targets
                ]
            except KubectlError:
                forwards.close()
                ports = []
            yield ports

    @contextlib.contextmanager
    def gateway(self) -> Iterator[EnvoyFleet]:
        pods = self.kubectl.get("pods", "--selector", GATEWAY_SELECTOR)["items"]
        names = [p["metadata"]["name"] for p in _current(pods) if _ready(p)]
        if not names:
            raise KubectlError(f"no ready gateway pod ({GATEWAY_SELECTOR}) in {self.namespace}")
        admin_port = _admin_port()
        with contextlib.ExitStack() as forwards:
            ports = [
                forwards.enter_context(self.kubectl.port_forward(f"pod/{name}", admin_port))
                for name in names
            ]
            yield EnvoyFleet([EnvoyAdmin(f"http://127.0.0.1:{port}") for port in ports])

    def replicas(self, service: str, color: str) -> int:
        return int(self._deployment(service, color)["spec"].get("replicas") or 0)

    def write_weights(self, service: str, weights: Mapping[str, int]) -> str:
        for _ in range(_REPLACE_ATTEMPTS):
            configmap, document, split = self._routes()
            split[service] = dict(weights)
            try:
                version = str(int(document.get("version_info") or 0) + 1)
            except ValueError:
                raise KubectlError(
                    f"{ROUTES_CONFIGMAP}: version_info {document.get('version_info')!r} "
                    "is not a number"
                ) from None
            configmap["data"][xds.RDS_FILE] = render_route_file(split, version, document)
            try:
                # Carries the resourceVersion read above: refused if it changed since.
                self.kubectl.run("replace", "--filename", "-", stdin=json.dumps(configmap))
            except KubectlError as error:
                if "Conflict" not in str(error):
                    raise
                continue
            return version
        raise KubectlError(
            f"{ROUTES_CONFIGMAP} changed under every one of {_REPLACE_ATTEMPTS} writes"
        )

    def alive(self, service: str, color: str) -> bool:
        baseline = self._baseline.get((service, color), {})
        return all(
            _restarts(pod) <= baseline.get(pod["metadata"]["name"], 0)
            for pod in self._pods(service, color)
        )

    def mark_live(self, service: str, color: str) -> None:
        """Nothing to record: the live color is the one the routes give all the weight."""

    def stop(self, service: str, color: str, timeout: float) -> bool:
        name = xds.cluster_name(service, color)
        self.kubectl.run("scale", f"deployment/{name}", "--replicas=0")
        self._baseline.pop((service, color), None)
        deadline = time.monotonic() + timeout
        while self._pods(service, color):
            if time.monotonic() > deadline:
                return False  # the kubelet ends them at their termination grace
            time.sleep(self.poll_s)
        return True

    def status(self) -> dict[str, Any]:
        report: dict[str, Any] = {"platform": self.name, "namespace": self.namespace}
        _, _, split = self._routes()
        health: dict[str, dict[str, bool]] = {}
        try:
            with self.gateway() as gateway:
                for service in contract.SERVICES:
                    for color in xds.COLORS:
                        cluster = xds.cluster_name(service, color)
                        health[cluster] = gateway.host_health(cluster)
        except (KubectlError, AdminError) as error:
            report["envoy_error"] = str(error)
        services: dict[str, Any] = {}
        for service in contract.SERVICES:
            live = _live(split[service])
            colors = {}
            for color in xds.COLORS:
                deployment = self._deployment(service, color)
                hosts = health.get(xds.cluster_name(service, color), {})
                colors[color] = {
                    "version": image_version(self._image(deployment)),
                    "image": self._image(deployment),
                    "weight": split[service][color],
                    "live": color == live,
                    "replicas": int(deployment["spec"].get("replicas") or 0),
                    "processes": [
                        p["metadata"]["name"] for p in self._pods(service, color) if _ready(p)
                    ],
                    "healthy_hosts": sum(hosts.values()),
                    "hosts": len(hosts),
                }
            services[service] = colors
        report["services"] = services
        return report
