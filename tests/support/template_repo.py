"""A throwaway git repository of the template for copy/update tests.

Every recorded release is tagged at its commit, and the working tree (with
uncommitted changes) is committed on top and tagged as the next version, so
`copier update --vcs-ref <next>` takes exactly what is being tested and
versioned migrations see a real version to compare with.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.support import RELEASES_FILE, ROOT, git

VERSION = re.compile(r'^version = "([^"]+)"', re.MULTILINE)


@dataclass(frozen=True)
class Release:
    version: str
    commit: str

    @property
    def tag(self) -> str:
        return f"v{self.version}"


def recorded_releases() -> list[Release]:
    data = yaml.safe_load(RELEASES_FILE.read_text()) or {}
    return [
        Release(str(r["version"]), str(r["commit"])) for r in data.get("releases") or []
    ]


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def next_version(releases: list[Release]) -> str:
    """The working tree's version: pyproject's if it is newer than every
    release, else the patch after the newest release."""
    current = VERSION.search((ROOT / "pyproject.toml").read_text())
    assert current, "pyproject.toml has no version"
    if not releases or _key(current.group(1)) > max(_key(r.version) for r in releases):
        return current.group(1)
    major, minor, patch = max(_key(r.version) for r in releases)
    return f"{major}.{minor}.{patch + 1}"


def working_tree_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [name for name in listed.split("\0") if name and (ROOT / name).is_file()]


def build_template_repo(destination: Path) -> tuple[Path, list[Release], str]:
    """Clone the template, tag the releases, commit the working tree as next."""
    releases = recorded_releases()
    git(
        destination.parent,
        "clone",
        "--quiet",
        "--no-local",
        str(ROOT),
        destination.name,
    )
    for release in releases:
        exists = subprocess.run(
            ["git", "cat-file", "-e", f"{release.commit}^{{commit}}"],
            cwd=destination,
            check=False,
        )
        assert exists.returncode == 0, (
            f"release {release.version} commit {release.commit} is not in this "
            "clone's history (a shallow clone?)"
        )
        git(destination, "tag", "--force", release.tag, release.commit)

    for path in destination.iterdir():
        if path.name != ".git":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    for name in working_tree_files():
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    version = next_version(releases)
    git(destination, "add", "--all")
    git(
        destination,
        "commit",
        "--quiet",
        "--allow-empty",
        "-m",
        f"working tree as {version}",
    )
    git(destination, "tag", "--force", f"v{version}")
    return destination, releases, f"v{version}"
