"""`copier update` from every recorded release to the working tree."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import effective, git, interpreter, run, run_gates, tool_env
from tests.template_repo import Release, recorded_releases

RELEASES = recorded_releases()
UPDATE = [
    "copier",
    "update",
    "--skip-answered",
    "--defaults",
    "--trust",
    "--answers-file",
    ".copier-answers.yml",
]  # fmt: skip — the command Renovate's copier manager runs, plus --vcs-ref
CONFLICT_MARKER = re.compile(r"^(<<<<<<<|>>>>>>>)( |$)", re.MULTILINE)


def copy_at(repo: Path, ref: str, destination: Path, answers: dict[str, Any]) -> Path:
    data = destination.parent / f"{destination.name}-answers.yml"
    data.write_text(yaml.safe_dump(answers))
    env = tool_env(interpreter(effective(answers)["python_version"]))
    run(
        ["copier", "copy", "--trust", "--defaults", "--vcs-ref", ref,
         "--data-file", str(data), str(repo), str(destination)],
        destination.parent,
        env,
    ).check()  # fmt: skip
    git(destination, "init", "--quiet", "--initial-branch=main")
    git(destination, "add", "--all")
    git(destination, "commit", "--quiet", "-m", f"copy at {ref}")
    return destination


def test_the_harness_tags_the_working_tree_as_the_next_version(
    template_repo: tuple[Path, str],
) -> None:
    repo, next_tag = template_repo

    tags = git(repo, "tag", "--list").split()

    assert next_tag in tags
    assert {release.tag for release in RELEASES} <= set(tags)
    assert git(repo, "rev-list", "-n1", next_tag) == git(repo, "rev-parse", "HEAD")


@pytest.mark.slow
@pytest.mark.parametrize("release", RELEASES, ids=lambda r: r.tag)
def test_update_from_release_passes_its_gates(
    template_repo: tuple[Path, str], release: Release, tmp_path: Path
) -> None:
    repo, next_tag = template_repo
    answers: dict[str, Any] = {}
    project = copy_at(repo, release.tag, tmp_path / "service", answers)
    env = tool_env(interpreter(effective(answers)["python_version"]))

    run([*UPDATE, "--vcs-ref", next_tag], project, env).check()

    recorded = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert recorded["_commit"] == next_tag
    assert not list(project.rglob("*.rej"))
    for path in project.rglob("*"):
        if path.is_file() and ".git" not in path.parts and ".venv" not in path.parts:
            text = path.read_text(errors="replace")
            assert not CONFLICT_MARKER.search(text), path
    run_gates(project, answers)
