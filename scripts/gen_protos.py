"""Generate the Python protobuf/gRPC code and its .pyi stubs from protos/.

    python scripts/gen_protos.py          # regenerate gen/python/
    python scripts/gen_protos.py --check  # exit 1 when gen/python/ is stale

The output is one importable tree (`manufacturing.<domain>.v1`), packaged by
pyproject.toml; it is never edited by hand.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
OUTPUT = ROOT / "gen" / "python"


def generate(out: Path) -> None:
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    well_known = str(resources.files("grpc_tools") / "_proto")
    plugins = Path(sys.executable).parent  # mypy-protobuf installs its plugins beside python
    out.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"--plugin=protoc-gen-mypy={plugins / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={plugins / 'protoc-gen-mypy_grpc'}",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    # protoc writes modules only; packages need __init__.py, and py.typed makes the
    # stubs visible to type checkers of code that installs this tree.
    for directory in [
        out / "manufacturing",
        *(p for p in (out / "manufacturing").rglob("*") if p.is_dir()),
    ]:
        (directory / "__init__.py").touch()
    (out / "manufacturing" / "py.typed").touch()


def differences(left: Path, right: Path) -> list[str]:
    comparison = filecmp.dircmp(left, right, ignore=["__pycache__"])
    found = [f"only in {comparison.left}: {n}" for n in comparison.left_only]
    found += [f"only in {comparison.right}: {n}" for n in comparison.right_only]
    _, mismatch, errors = filecmp.cmpfiles(left, right, comparison.common_files, shallow=False)
    found += [f"differs: {left / n}" for n in mismatch + errors]
    for sub in comparison.common_dirs:
        found += differences(left / sub, right / sub)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when gen/python is stale")
    options = parser.parse_args()
    if not options.check:
        shutil.rmtree(OUTPUT / "manufacturing", ignore_errors=True)
        generate(OUTPUT)
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        generate(Path(scratch))
        stale = differences(Path(scratch) / "manufacturing", OUTPUT / "manufacturing")
    for line in stale:
        print(line, file=sys.stderr)
    if stale:
        print("generated code is stale: run `make protos`", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
