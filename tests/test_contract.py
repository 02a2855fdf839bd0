"""The contract: generated code is fresh, importable with stubs, and buf-clean."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUF = ROOT / "node_modules" / ".bin" / "buf"


def test_generated_code_is_fresh():
    completed = subprocess.run(
        [sys.executable, "scripts/gen_protos.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr


def test_api_reference_is_fresh():
    completed = subprocess.run(
        [sys.executable, "scripts/gen_api_docs.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr


def test_check_detects_stale_code(tmp_path):
    # Copy the tree, change one proto, and the check must fail.
    for part in ("protos", "gen", "scripts"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    proto = tmp_path / "protos/manufacturing/quality/v1/control_chart.proto"
    proto.write_text(proto.read_text().replace("double center_line = 1;", "float center_line = 1;"))
    completed = subprocess.run(
        [sys.executable, "scripts/gen_protos.py", "--check"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 1
    assert "control_chart_pb2" in completed.stderr


@pytest.mark.parametrize("domain", ["common", "scheduling", "quality", "maintenance"])
def test_every_package_imports_with_stubs(domain):
    package = importlib.import_module(f"manufacturing.{domain}.v1")
    folder = Path(str(package.__file__)).parent
    modules = sorted(folder.glob("*_pb2.py"))
    assert modules
    for module in modules:
        assert module.with_suffix(".pyi").exists()
        importlib.import_module(f"manufacturing.{domain}.v1.{module.stem}")


def _buf(*args: str) -> subprocess.CompletedProcess[str]:
    if not BUF.exists():
        if os.environ.get("CI"):
            pytest.fail("buf is not installed (npm ci)")
        pytest.skip("buf is not installed: run `npm ci`")
    return subprocess.run([str(BUF), *args], cwd=ROOT, capture_output=True, text=True, check=False)


def test_buf_lint_is_clean():
    completed = _buf("lint")
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_buf_format_is_clean():
    completed = _buf("format", "--diff", "--exit-code")
    assert completed.returncode == 0, completed.stdout
