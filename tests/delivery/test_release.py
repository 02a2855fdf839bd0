"""The release command: versions, changelog and tags, in a scratch git repository."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from services.runtime.build_info import read_version
from tests.delivery.tools import ROOT, SERVICES, run, tool

RELEASE = ROOT / "scripts" / "release.py"


def _load_release_module():
    # scripts/ is a folder of commands, not a package: load the file itself.
    spec = importlib.util.spec_from_file_location("release_command", RELEASE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


_release = _load_release_module()
ReleaseError = _release.ReleaseError
Version = _release.Version
next_version = _release.next_version
update_changelog = _release.update_changelog


@pytest.mark.parametrize(
    ("current", "part", "rc", "expected"),
    [
        ("0.1.0", "patch", False, "0.1.1"),
        ("0.1.0", "minor", False, "0.2.0"),
        ("0.1.9", "major", False, "1.0.0"),
        ("0.1.0", "minor", True, "0.2.0-rc.1"),
        ("0.2.0-rc.1", "rc", False, "0.2.0-rc.2"),
        ("0.2.0-rc.2", "final", False, "0.2.0"),
        ("0.2.0", "dev", False, "0.2.1-dev"),
        # A pre-release already stands for its version: release it, don't skip it.
        ("0.2.1-dev", "patch", False, "0.2.1"),
        ("0.2.1-dev", "minor", False, "0.3.0"),
        ("0.3.0-dev", "minor", False, "0.3.0"),
        ("1.0.0-rc.3", "major", False, "1.0.0"),
        ("0.2.1-dev", "patch", True, "0.2.1-rc.1"),
    ],
)
def test_next_version(current, part, rc, expected):
    new = next_version(Version.parse(current), part, rc)
    assert str(new) == expected
    assert read_version_text(expected) == expected  # the runtime accepts what we produce


def read_version_text(text: str) -> str:
    from tempfile import TemporaryDirectory

    with TemporaryDirectory() as directory:
        path = Path(directory) / "VERSION"
        path.write_text(text + "\n")
        return read_version(path)


@pytest.mark.parametrize(
    ("current", "part"), [("0.1.0", "rc"), ("0.1.0", "final"), ("0.2.0-rc.1", "dev")]
)
def test_impossible_bumps_are_refused(current, part):
    with pytest.raises(ReleaseError):
        next_version(Version.parse(current), part)


def test_every_service_has_a_version_and_a_changelog():
    for service in SERVICES:
        version = Version.parse((ROOT / "services" / service / "VERSION").read_text())
        changelog = (ROOT / "services" / service / "CHANGELOG.md").read_text()
        assert "## [Unreleased]" in changelog
        assert f"## [{version.final}]" in changelog or version.prerelease


def test_changelog_moves_unreleased_notes():
    text = "# Changelog\n\n## [Unreleased]\n\n- Added A.\n\n## [0.1.0] - 2026-01-01\n\n- First.\n"
    updated = update_changelog(text, Version.parse("0.2.0"), "2026-02-02", Version.parse("0.1.0"))
    assert updated == (
        "# Changelog\n\n## [Unreleased]\n\n## [0.2.0] - 2026-02-02\n\n- Added A.\n\n"
        "## [0.1.0] - 2026-01-01\n\n- First.\n"
    )
    with pytest.raises(ReleaseError, match="nothing under"):
        update_changelog(updated, Version.parse("0.2.1"), "2026-02-03", Version.parse("0.2.0"))


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


def buf_path() -> str:
    local = ROOT / "node_modules" / ".bin" / "buf"
    return str(local) if local.is_file() else tool("buf", "npm ci installs it")


@pytest.fixture
def scratch(tmp_path) -> Path:
    """A repository with the real contract and one service at 0.1.0 with notes."""
    repo = tmp_path / "repo"
    (repo / "services" / "scheduling").mkdir(parents=True)
    shutil.copytree(ROOT / "protos", repo / "protos")
    shutil.copy(ROOT / "buf.yaml", repo / "buf.yaml")
    (repo / "services" / "scheduling" / "VERSION").write_text("0.1.0\n")
    (repo / "services" / "scheduling" / "CHANGELOG.md").write_text(
        "# Changelog\n\n## [Unreleased]\n\n- Solve returns makespan.\n"
    )
    git(repo, "init", "--quiet", "--initial-branch=main")
    git(repo, "config", "user.email", "release@test.invalid")
    git(repo, "config", "user.name", "Release Test")
    git(repo, "add", ".")
    git(repo, "commit", "--quiet", "-m", "start")
    return repo


def release(repo: Path, *args: str, breaking: bool = False):
    """The release command; buf breaking (seconds per call) only where it is the point."""
    buf = ["--buf", buf_path()] if breaking else []
    options = [] if breaking else ["--skip-breaking"]
    return run(
        sys.executable,
        str(RELEASE),
        "--repo",
        str(repo),
        *buf,
        "bump",
        *args,
        *options,
        "--date",
        "2026-11-27",
    )


def add_note(repo: Path, note: str) -> None:
    changelog = repo / "services" / "scheduling" / "CHANGELOG.md"
    changelog.write_text(
        changelog.read_text().replace("## [Unreleased]\n", f"## [Unreleased]\n\n- {note}\n", 1)
    )
    git(repo, "commit", "--quiet", "-am", note)


def state(repo: Path) -> tuple[str, list[str]]:
    version = (repo / "services" / "scheduling" / "VERSION").read_text().strip()
    return version, git(repo, "tag", "--list").split()


def test_release_flow_bumps_tags_and_keeps_the_changelog(scratch):
    completed = release(scratch, "scheduling", "minor")
    assert completed.returncode == 0, completed.stderr
    assert state(scratch) == ("0.2.0", ["scheduling/v0.2.0"])
    changelog = (scratch / "services" / "scheduling" / "CHANGELOG.md").read_text()
    assert "## [Unreleased]\n\n## [0.2.0] - 2026-11-27\n\n- Solve returns makespan.\n" in changelog
    assert git(scratch, "log", "-1", "--format=%s") == "scheduling: release v0.2.0"
    assert git(scratch, "status", "--porcelain") == ""
    # The tag is annotated and points at the release commit.
    assert git(scratch, "cat-file", "-t", "scheduling/v0.2.0") == "tag"
    assert git(scratch, "rev-parse", "scheduling/v0.2.0^{commit}") == git(
        scratch, "rev-parse", "HEAD"
    )

    # Same version twice: nothing to release.
    completed = release(scratch, "scheduling", "patch")
    assert completed.returncode == 1 and "nothing under" in completed.stderr

    # Development continues on a -dev version, untagged.
    assert release(scratch, "scheduling", "dev").returncode == 0
    assert state(scratch) == ("0.2.1-dev", ["scheduling/v0.2.0"])

    # Release candidates, then the final release.
    add_note(scratch, "Faster dispatch.")
    assert release(scratch, "scheduling", "patch", "--rc").returncode == 0
    assert state(scratch)[0] == "0.2.1-rc.1"
    add_note(scratch, "Fix rc.1 regression.")
    assert release(scratch, "scheduling", "rc").returncode == 0
    completed = release(scratch, "scheduling", "final")
    assert completed.returncode == 0, completed.stderr
    version, tags = state(scratch)
    assert version == "0.2.1"
    assert set(tags) == {
        "scheduling/v0.2.0",
        "scheduling/v0.2.1-rc.1",
        "scheduling/v0.2.1-rc.2",
        "scheduling/v0.2.1",
    }
    changelog = (scratch / "services" / "scheduling" / "CHANGELOG.md").read_text()
    assert "## [0.2.1] - 2026-11-27\n\nReleased from 0.2.1-rc.2 unchanged." in changelog
    assert changelog.index("[0.2.1]") < changelog.index("[0.2.1-rc.2]") < changelog.index("[0.2.0]")


def test_incompatible_contract_change_blocks_the_release(scratch):
    completed = release(scratch, "scheduling", "patch", breaking=True)  # 0.1.1, the baseline
    assert completed.returncode == 0, completed.stderr
    assert "no earlier release" in completed.stdout
    proto = scratch / "protos" / "manufacturing" / "scheduling" / "v1" / "schedule.proto"
    text = proto.read_text()
    assert "  string display_name = 2;\n" in text
    proto.write_text(text.replace("  string display_name = 2;\n", "", 1))
    add_note(scratch, "Drop Machine.display_name.")
    completed = release(scratch, "scheduling", "minor", breaking=True)
    assert completed.returncode == 1
    assert "breaks compatibility with scheduling/v0.1.1" in completed.stderr
    assert "display_name" in completed.stderr or "2" in completed.stderr
    assert state(scratch) == ("0.1.1", ["scheduling/v0.1.1"])  # nothing changed
    # A compatible change passes.
    proto.write_text(
        text.replace(
            "  string display_name = 2;\n",
            "  string display_name = 2;\n  // A note.\n  string note = 99;\n",
            1,
        )
    )
    git(scratch, "commit", "--quiet", "-am", "add a field")
    completed = release(scratch, "scheduling", "minor", breaking=True)
    assert completed.returncode == 0, completed.stderr
    assert "contract compatible with scheduling/v0.1.1" in completed.stdout


def test_dry_run_changes_nothing(scratch):
    completed = release(scratch, "scheduling", "major", "--dry-run")
    assert completed.returncode == 0, completed.stderr
    assert "0.1.0 -> 1.0.0 (tag scheduling/v1.0.0)" in completed.stdout
    assert state(scratch) == ("0.1.0", [])
