"""The release step: checks first, then version, tag and recorded commit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support import ROOT, git

sys.path.insert(0, str(ROOT / "scripts"))
import release

CHANGELOG = """# Changelog

## [1.3.0] - 2030-01-02

### Added
- something

### Upgrading
Nothing to do.

## [1.2.0] - 2030-01-01

### Upgrading
Nothing to do.
"""


@pytest.mark.parametrize("bad", ["1.2", "v1.2.3", "1.2.3rc1", "01.2.3"])
def test_a_version_must_be_semver(bad: str) -> None:
    with pytest.raises(release.ReleaseError, match="not a semantic version"):
        release.parse(bad)


def test_a_release_must_be_newer_than_every_recorded_one() -> None:
    recorded = release.record("releases: []\n", "1.2.0", "a" * 40)

    release.check_newer("1.2.1", recorded)
    with pytest.raises(
        release.ReleaseError, match=r"not newer than recorded release v1\.2\.0"
    ):
        release.check_newer("1.2.0", recorded)


def test_the_changelog_needs_the_section_and_its_upgrading_part() -> None:
    assert "something" in release.changelog_section(CHANGELOG, "1.3.0")
    with pytest.raises(release.ReleaseError, match=r"no '## \[1\.4\.0\]"):
        release.changelog_section(CHANGELOG, "1.4.0")
    without = CHANGELOG.replace(
        "### Upgrading\nNothing to do.\n\n## [1.2.0]", "## [1.2.0]"
    )
    with pytest.raises(release.ReleaseError, match="Upgrading"):
        release.changelog_section(without, "1.3.0")


def test_recording_appends_valid_yaml() -> None:
    text = "# header\nreleases: []\n"
    text = release.record(text, "0.1.0", "a" * 40)
    text = release.record(text, "0.2.0", "b" * 40)

    assert yaml.safe_load(text) == {
        "releases": [
            {"version": "0.1.0", "commit": "a" * 40},
            {"version": "0.2.0", "commit": "b" * 40},
        ]
    }
    assert release.recorded(text) == [("0.1.0", "a" * 40), ("0.2.0", "b" * 40)]


def test_the_recorded_releases_file_parses_for_the_update_tests() -> None:
    text = (ROOT / "tests" / "releases.yml").read_text()

    parsed = yaml.safe_load(text)["releases"]

    assert [(r["version"], r["commit"]) for r in parsed] == release.recorded(text)
    for version, commit in release.recorded(text):
        assert git(ROOT, "cat-file", "-t", commit).strip() == "commit", version


def test_a_release_bumps_tags_and_records_in_a_clone(tmp_path: Path) -> None:
    clone = tmp_path / "template"
    git(tmp_path, "clone", "--quiet", str(ROOT), clone.name)
    for name in ("user.name", "user.email"):
        git(
            clone,
            "config",
            name,
            "Release Test" if name == "user.name" else "r@example.com",
        )
    (clone / "CHANGELOG.md").write_text(
        (clone / "CHANGELOG.md")
        .read_text()
        .replace(
            "# Changelog\n",
            "# Changelog\n\n## [99.0.0] - 2030-01-01\n\n### Upgrading\nNothing.\n",
            1,
        )
    )
    git(clone, "commit", "--quiet", "-am", "changelog for 99.0.0")
    script = [sys.executable, str(ROOT / "scripts" / "release.py")]

    dry = subprocess.run([*script, "99.0.0", "--dry-run", "--root", str(clone)],
                         capture_output=True, text=True, check=False)  # fmt: skip
    real = subprocess.run([*script, "99.0.0", "--root", str(clone)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    again = subprocess.run([*script, "99.0.0", "--root", str(clone)],
                           capture_output=True, text=True, check=False)  # fmt: skip

    assert dry.returncode == 0, dry.stderr
    assert "would tag v99.0.0" in dry.stdout
    assert real.returncode == 0, real.stderr
    tagged = git(clone, "rev-list", "-n1", "v99.0.0").strip()
    releases = yaml.safe_load((clone / "tests" / "releases.yml").read_text())[
        "releases"
    ]
    assert releases[-1] == {"version": "99.0.0", "commit": tagged}
    assert 'version = "99.0.0"' in git(clone, "show", f"{tagged}:pyproject.toml")
    assert git(clone, "status", "--porcelain") == ""
    assert again.returncode == 1
    assert "not newer than recorded release v99.0.0" in again.stderr
