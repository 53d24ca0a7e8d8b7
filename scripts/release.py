"""Cut a template release: `uv run python scripts/release.py X.Y.Z`.

Before running it, write the release's CHANGELOG.md section
(`## [X.Y.Z] - YYYY-MM-DD`, with an `### Upgrading` part) and, if the release
renames, moves or removes anything a service has, its migration in
migrations_copier/ (see migrations_copier/README.md); then run `.ci/run`.

The script checks the tree is clean, the version is semver and newer than
every recorded release, and the changelog section is there; then it:

1. sets the version in pyproject.toml (and uv.lock) and commits "Release vX.Y.Z";
2. tags that commit `vX.Y.Z` (annotated);
3. records the version and commit in tests/releases.yml (the update tests
   read it, because tags may not travel with a clone) and commits that.

Push with `git push --follow-tags`. `--dry-run` checks and prints, changes
nothing.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
PYPROJECT_VERSION = re.compile(r'^version = "([^"]+)"$', re.MULTILINE)
RECORDED = re.compile(r"^  - version: (\S+)\n    commit: ([0-9a-f]{40})$", re.MULTILINE)


class ReleaseError(Exception):
    """A check failed; the message says which and what to do."""


def parse(version: str) -> tuple[int, int, int]:
    match = SEMVER.match(version)
    if match is None:
        raise ReleaseError(f"{version!r} is not a semantic version (X.Y.Z)")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def recorded(releases_text: str) -> list[tuple[str, str]]:
    """(version, commit) of every recorded release, in file order."""
    return RECORDED.findall(releases_text)


def check_newer(version: str, releases_text: str) -> None:
    for old, _ in recorded(releases_text):
        if parse(old) >= parse(version):
            raise ReleaseError(f"v{version} is not newer than recorded release v{old}")


def changelog_section(changelog: str, version: str) -> str:
    """The body of `## [version] - date`, checked for an Upgrading part."""
    heading = re.compile(
        rf"^## \[{re.escape(version)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", re.MULTILINE
    )
    match = heading.search(changelog)
    if match is None:
        raise ReleaseError(
            f"CHANGELOG.md has no '## [{version}] - YYYY-MM-DD' section: write it first"
        )
    rest = changelog[match.end() :]
    following = re.search(r"^## \[", rest, re.MULTILINE)
    body = rest[: following.start()] if following else rest
    if not re.search(r"^### Upgrading$", body, re.MULTILINE):
        raise ReleaseError(
            f"the CHANGELOG section for {version} needs an '### Upgrading' part "
            "(what owners must do by hand, or 'Nothing to do')"
        )
    return body


def set_version(pyproject: str, version: str) -> str:
    if not PYPROJECT_VERSION.search(pyproject):
        raise ReleaseError("pyproject.toml has no top-level version line")
    return PYPROJECT_VERSION.sub(f'version = "{version}"', pyproject, count=1)


def record(releases_text: str, version: str, commit: str) -> str:
    entry = f"  - version: {version}\n    commit: {commit}\n"
    if re.search(r"^releases: \[\]$", releases_text, re.MULTILINE):
        return re.sub(r"^releases: \[\]$", "releases:\n" + entry.rstrip("\n"),
                      releases_text, count=1, flags=re.MULTILINE) + (
            "" if releases_text.endswith("\n") else "\n"
        )  # fmt: skip
    return releases_text.rstrip("\n") + "\n" + entry


def git(*args: str, cwd: Path = ROOT) -> str:
    result = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise ReleaseError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def release(version: str, root: Path, dry_run: bool) -> list[str]:
    """Run the checks and the steps; returns what was (or would be) done."""
    parse(version)
    releases_file = root / "tests" / "releases.yml"
    releases_text = releases_file.read_text()
    check_newer(version, releases_text)
    changelog_section((root / "CHANGELOG.md").read_text(), version)
    if git("status", "--porcelain", cwd=root):
        raise ReleaseError(
            "the working tree has uncommitted changes: commit them first"
        )
    if git("tag", "--list", f"v{version}", cwd=root):
        raise ReleaseError(f"tag v{version} exists already")
    steps = [
        f"set version {version} in pyproject.toml and uv.lock, commit 'Release v{version}'",
        f"tag v{version}",
        f"record v{version} in tests/releases.yml, commit 'Record release v{version}'",
    ]
    if dry_run:
        return steps
    pyproject = root / "pyproject.toml"
    pyproject.write_text(set_version(pyproject.read_text(), version))
    subprocess.run(["uv", "lock", "--quiet"], cwd=root, check=True)
    git("add", "pyproject.toml", "uv.lock", cwd=root)
    git("commit", "--quiet", "--allow-empty", "-m", f"Release v{version}", cwd=root)
    git("tag", "-a", f"v{version}", "-m", f"prodstarter-fastapi v{version}", cwd=root)
    commit = git("rev-parse", "HEAD", cwd=root)
    releases_file.write_text(record(releases_text, version, commit))
    git("add", "tests/releases.yml", cwd=root)
    git("commit", "--quiet", "-m", f"Record release v{version}", cwd=root)
    return steps


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("version", help="the new version, X.Y.Z")
    parser.add_argument("--dry-run", action="store_true", help="check only")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        steps = release(args.version, args.root, args.dry_run)
    except ReleaseError as error:
        print(f"release: {error}", file=sys.stderr)
        return 1
    prefix = "would " if args.dry_run else ""
    for step in steps:
        print(f"{prefix}{step}")
    if not args.dry_run:
        print("done: push with `git push --follow-tags`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
