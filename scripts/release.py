"""Release a service: bump its version, move its changelog, commit and tag.

Each service's semantic version lives in one place, ``services/<name>/VERSION``; its
notes in ``services/<name>/CHANGELOG.md`` (Keep a Changelog: changes collect under
``## [Unreleased]``). A release tag is ``<service>/v<version>``::

    python scripts/release.py bump scheduling minor          # 0.1.0 -> 0.2.0, tag
    python scripts/release.py bump scheduling minor --rc     # 0.1.0 -> 0.2.0-rc.1, tag
    python scripts/release.py bump scheduling rc             # 0.2.0-rc.1 -> 0.2.0-rc.2
    python scripts/release.py bump scheduling final          # 0.2.0-rc.2 -> 0.2.0, tag
    python scripts/release.py bump scheduling dev            # 0.2.0 -> 0.2.1-dev (no tag)
    python scripts/release.py breaking [scheduling ...]      # buf breaking vs last release

Before a release that is not a major one, ``buf breaking`` compares the service's
contract (``protos/manufacturing/<service>``) with its last release tag and refuses an
incompatible change. Nothing is pushed: the command prints the push to run.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("scheduling", "quality", "maintenance")
PARTS = ("major", "minor", "patch", "rc", "final", "dev")
UNRELEASED = "## [Unreleased]"
_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-(rc\.(\d+)|dev))?$")


class ReleaseError(Exception):
    """The release cannot go ahead; the message says why and what to do."""


@dataclass(frozen=True)
class Version:
    major: int
    minor: int
    patch: int
    rc: int | None = None  # release candidate number
    dev: bool = False

    @classmethod
    def parse(cls, text: str) -> Version:
        match = _VERSION.match(text.strip())
        if match is None:
            raise ReleaseError(f"{text.strip()!r} is not X.Y.Z, X.Y.Z-rc.N or X.Y.Z-dev")
        rc = int(match[5]) if match[5] else None
        return cls(int(match[1]), int(match[2]), int(match[3]), rc, match[4] == "dev")

    @property
    def prerelease(self) -> bool:
        return self.rc is not None or self.dev

    @property
    def final(self) -> Version:
        return replace(self, rc=None, dev=False)

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.rc is not None:
            return f"{text}-rc.{self.rc}"
        return f"{text}-dev" if self.dev else text


def next_version(current: Version, part: str, rc: bool = False) -> Version:
    """The version a ``part`` bump gives, following semver precedence.

    A pre-release X.Y.Z-... already stands for X.Y.Z: bumping it to the level it implies
    releases X.Y.Z itself (0.2.0-dev + minor = 0.2.0; 0.2.1-dev + minor = 0.3.0).
    """
    if part in ("major", "minor", "patch"):
        base, bare = current.final, current.prerelease
        if part == "major":
            target = (
                base if bare and base.minor == base.patch == 0 else Version(base.major + 1, 0, 0)
            )
        elif part == "minor":
            target = base if bare and base.patch == 0 else Version(base.major, base.minor + 1, 0)
        else:
            target = base if bare else Version(base.major, base.minor, base.patch + 1)
        return replace(target, rc=1) if rc else target
    if rc:
        raise ReleaseError("--rc goes with major, minor or patch (which version to prepare)")
    if part == "rc":
        if current.rc is None:
            raise ReleaseError(f"{current} is not a release candidate: start one with `patch --rc`")
        return replace(current, rc=current.rc + 1)
    if part == "final":
        if current.rc is None:
            raise ReleaseError(f"{current} is not a release candidate; nothing to finalise")
        return current.final
    if part == "dev":
        if current.prerelease:
            raise ReleaseError(f"{current} is already a pre-release")
        return Version(current.major, current.minor, current.patch + 1, dev=True)
    raise ReleaseError(f"unknown part {part!r}; one of {', '.join(PARTS)}")


def tag_name(service: str, version: Version) -> str:
    return f"{service}/v{version}"


def update_changelog(text: str, version: Version, date: str, previous: Version) -> str:
    """Move the Unreleased notes under a new ``## [version] - date`` heading."""
    if UNRELEASED not in text:
        raise ReleaseError(f"the changelog has no '{UNRELEASED}' section")
    head, rest = text.split(UNRELEASED, 1)
    following = re.search(r"(?m)^## \[", rest)
    notes, tail = (
        (rest[: following.start()], rest[following.start() :]) if following else (rest, "")
    )
    notes = notes.strip("\n")
    if not notes.strip():
        if previous.rc is not None and version == previous.final:
            notes = f"Released from {previous} unchanged."
        else:
            raise ReleaseError(
                f"nothing under '{UNRELEASED}' in the changelog: note what changed first"
            )
    section = f"## [{version}] - {date}\n\n{notes}\n"
    return f"{head}{UNRELEASED}\n\n{section}\n{tail}".rstrip("\n") + "\n"


def _git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=False
    )
    if check and completed.returncode != 0:
        raise ReleaseError(f"git {' '.join(args)}: {completed.stderr.strip()}")
    return completed


def last_release_tag(repo: Path, service: str) -> str | None:
    """The highest final release tag of ``service`` (release candidates excluded)."""
    tags = _git(repo, "tag", "--list", f"{service}/v*").stdout.split()
    finals = []
    for tag in tags:
        try:
            version = Version.parse(tag.split("/v", 1)[1])
        except ReleaseError:
            continue
        if not version.prerelease:
            finals.append(((version.major, version.minor, version.patch), tag))
    return max(finals)[1] if finals else None


def find_buf(repo: Path, given: str | None) -> str:
    for candidate in (given, str(repo / "node_modules/.bin/buf"), shutil.which("buf")):
        if candidate and Path(candidate).is_file():
            return candidate
    raise ReleaseError("buf not found (npm ci installs it); --skip-breaking only for emergencies")


def check_breaking(repo: Path, service: str, buf: str) -> str:
    """``buf breaking`` of the service's contract against its last release; returns a note."""
    tag = last_release_tag(repo, service)
    if tag is None:
        return f"{service}: no earlier release, nothing to compare"
    contract = f"protos/manufacturing/{service}"
    if not (repo / contract).is_dir():
        return f"{service}: no contract at {contract}"
    completed = subprocess.run(
        [buf, "breaking", "--against", f".git#tag={tag}", "--path", contract],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise ReleaseError(
            f"{service}: the contract breaks compatibility with {tag}:\n"
            f"{completed.stdout}{completed.stderr}"
            "Keep v1 compatible (add fields and methods, deprecate instead of removing) "
            "or make it a major release with a new package version."
        )
    return f"{service}: contract compatible with {tag}"


def bump(args: argparse.Namespace) -> int:
    repo: Path = args.repo
    service: str = args.service
    version_file = repo / "services" / service / "VERSION"
    changelog = repo / "services" / service / "CHANGELOG.md"
    current = Version.parse(version_file.read_text(encoding="utf-8"))
    new = next_version(current, args.part, args.rc)
    releasing = not new.dev
    tag = tag_name(service, new)
    paths = [version_file.relative_to(repo).as_posix()]

    dirty = _git(
        repo, "status", "--porcelain", "--", paths[0], changelog.relative_to(repo).as_posix()
    )
    if dirty.stdout.strip():
        raise ReleaseError(f"commit or discard the changes to {service}'s VERSION/CHANGELOG first")
    if (
        releasing
        and _git(repo, "rev-parse", "-q", "--verify", f"refs/tags/{tag}", check=False).returncode
        == 0
    ):
        raise ReleaseError(f"tag {tag} exists already")
    if releasing and args.part != "major" and not args.skip_breaking:
        print(check_breaking(repo, service, find_buf(repo, args.buf)))

    date = args.date or datetime.now(UTC).date().isoformat()
    updated_changelog = None
    if releasing:
        updated_changelog = update_changelog(
            changelog.read_text(encoding="utf-8"), new, date, current
        )
        paths.append(changelog.relative_to(repo).as_posix())
    print(f"{service}: {current} -> {new}" + (f" (tag {tag})" if releasing else ""))
    if args.dry_run:
        return 0

    version_file.write_text(f"{new}\n", encoding="utf-8")
    if updated_changelog is not None:
        changelog.write_text(updated_changelog, encoding="utf-8")
    message = f"{service}: release v{new}" if releasing else f"{service}: begin v{new}"
    _git(repo, "add", "--", *paths)
    _git(repo, "commit", "--quiet", "-m", message, "--", *paths)
    if releasing:
        _git(repo, "tag", "--annotate", tag, "-m", message)
        print(f"tagged {tag}; publish with: git push origin HEAD {tag}")
    return 0


def breaking(args: argparse.Namespace) -> int:
    unknown = sorted(set(args.services) - set(SERVICES))
    if unknown:
        raise ReleaseError(f"unknown services {unknown}; one of {', '.join(SERVICES)}")
    buf = find_buf(args.repo, args.buf)
    for service in args.services or SERVICES:
        print(check_breaking(args.repo, service, buf))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="release", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=ROOT, help="repository root")
    parser.add_argument("--buf", help="buf executable (default: node_modules/.bin/buf)")
    commands = parser.add_subparsers(dest="command", required=True)

    bump_parser = commands.add_parser("bump", help="bump, update the changelog, commit, tag")
    bump_parser.add_argument("service", choices=SERVICES)
    bump_parser.add_argument("part", choices=PARTS)
    bump_parser.add_argument("--rc", action="store_true", help="a release candidate X.Y.Z-rc.1")
    bump_parser.add_argument("--date", help="release date (default: today, UTC)")
    bump_parser.add_argument("--dry-run", action="store_true", help="print, change nothing")
    bump_parser.add_argument(
        "--skip-breaking", action="store_true", help="skip buf breaking (emergencies only)"
    )
    bump_parser.set_defaults(run=bump)

    breaking_parser = commands.add_parser("breaking", help="buf breaking vs the last releases")
    breaking_parser.add_argument("services", nargs="*", help=f"default: {' '.join(SERVICES)}")
    breaking_parser.set_defaults(run=breaking)

    args = parser.parse_args(argv)
    args.repo = args.repo.resolve()
    try:
        result: int = args.run(args)
    except (ReleaseError, OSError) as error:
        print(f"release: {error}", file=sys.stderr)
        return 1
    return result


if __name__ == "__main__":
    sys.exit(main())
