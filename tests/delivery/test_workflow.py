"""The CI/CD workflow: GitHub's workflow schema, and the pipeline it promises."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.delivery.tools import ROOT, SERVICES, run, tool

WORKFLOW = ROOT / ".github" / "workflows" / "ci-cd.yml"


@pytest.fixture(scope="module")
def workflow() -> dict:
    document = yaml.safe_load(WORKFLOW.read_text())
    # YAML 1.1 reads the key `on` as True.
    document["on"] = document.pop(True, document.get("on"))
    return document


def test_validates_against_the_github_workflow_schema():
    checker = tool("check-jsonschema", "pip package check-jsonschema")
    completed = run(checker, "--builtin-schema", "vendor.github-workflows", str(WORKFLOW))
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_tests_run_against_postgres_and_redis_containers(workflow):
    job = workflow["jobs"]["test"]
    assert set(job["services"]) == {"postgres", "redis"}
    assert job["env"]["CI"] == "true" and job["env"]["REQUIRE_SERVICES"] == "1"
    assert job["env"]["TEST_POSTGRES_URL"].startswith("postgresql+psycopg://")
    assert any(step.get("run") == "make test" for step in job["steps"])
    # The same database and cache images as docker compose.
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert job["services"]["postgres"]["image"] == compose["postgres"]["image"]
    assert job["services"]["redis"]["image"] == compose["redis"]["image"]


def test_contract_lint_and_breaking(workflow):
    steps = " ".join(step.get("run", "") for step in workflow["jobs"]["contract"]["steps"])
    assert "buf lint" in steps
    assert "buf breaking --against" in steps
    assert "scripts/release.py breaking" in steps


def test_images_per_service_tagged_by_commit_and_version(workflow):
    job = workflow["jobs"]["images"]
    matrix = job["strategy"]["matrix"]
    assert matrix["service"] == list(SERVICES) and matrix["dockerfile"] == ["docker/Dockerfile"]
    # deploy.sh deploys the ops image (backup CronJobs) with the same tags.
    assert matrix["include"] == [{"service": "ops", "dockerfile": "docker/ops.Dockerfile"}]
    assert set(job["needs"]) == {"test", "contract"}
    build = next(
        s for s in job["steps"] if s.get("uses", "").startswith("docker/build-push-action")
    )
    assert build["with"]["file"] == "${{ matrix.dockerfile }}"
    assert build["with"]["push"] is True
    tags = build["with"]["tags"]
    assert "${{ github.sha }}" in tags and "steps.meta.outputs.version" in tags
    assert "SERVICE=${{ matrix.service }}" in build["with"]["build-args"]
    assert job["permissions"] == {"contents": "read", "packages": "write"}


def test_main_rolls_out_to_staging_through_deploy_sh(workflow):
    job = workflow["jobs"]["staging"]
    assert job["needs"] == ["images"]
    assert "refs/heads/main" in job["if"]
    assert job["environment"]["name"] == "staging"
    command = job["steps"][-1]["run"]
    assert command.startswith("./deploy.sh --overlay staging")
    assert "--no-build" in command and "--switch" in command


def test_actions_are_pinned_and_secrets_stay_in_env(workflow):
    text = WORKFLOW.read_text()
    for action in re.findall(r"uses: (\S+)", text):
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@(v\d+|[0-9a-f]{40})", action), action
    # Secrets reach scripts through env, never spliced into a shell line.
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            assert "secrets." not in step.get("run", ""), step
    assert workflow["permissions"] == {"contents": "read"}
