"""`copier update` from every recorded release to the working tree, with a
team's edits in place: the command Renovate's copier manager runs, migrations
included.

Every answer set is updated from the oldest release, which crosses every
migration. Every later release is updated with answer sets taken in turn (two
from the newest, the update services make next; one from each release
between), so every release and every answer set is covered while the suite
grows by one update per release instead of six: crossing all of them took
more than 40 minutes at seven releases. PRODSTARTER_UPDATE_ALL=1 runs the
full cross product."""

from __future__ import annotations

import filecmp
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import owner_edits
from tests.migrations import (
    answers_after_update,
    answers_as_of,
    migrations_crossed,
    version_key,
)
from tests.support import (
    answer_sets,
    effective,
    git,
    interpreter,
    run,
    run_gates,
    tool_env,
)
from tests.template_repo import Release, recorded_releases

RELEASES = recorded_releases()
ANSWER_SETS = answer_sets()


def update_paths(releases: list[Release], sets: list[str]) -> list[tuple[Release, str]]:
    """The (release, answer set) pairs the update test runs (see the docstring)."""
    if os.environ.get("PRODSTARTER_UPDATE_ALL") == "1" or len(releases) <= 2:
        return [(release, name) for release in releases for name in sets]
    paths = [(releases[0], name) for name in sets]
    turn = 0
    for release in releases[1:]:
        for _ in range(2 if release is releases[-1] else 1):
            paths.append((release, sets[turn % len(sets)]))
            turn += 1
    return paths


UPDATE_PATHS = update_paths(RELEASES, sorted(ANSWER_SETS))
# The command Renovate's copier manager runs (plus --vcs-ref <new tag>).
RENOVATE = [
    "copier", "update", "--skip-answered", "--defaults", "--trust",
    "--answers-file", ".copier-answers.yml",
]  # fmt: skip
CONFLICT_MARKER = re.compile(r"^(<<<<<<<|>>>>>>>)( |$)", re.MULTILINE)
MIGRATION_LINE = re.compile(r"^migration (\S+) \((before|after)\): ", re.MULTILINE)


def env_for(answers: dict[str, Any]) -> dict[str, str]:
    return tool_env(interpreter(effective(answers)["python_version"]))


def copy_at(
    repo: Path, release: str, destination: Path, answers: dict[str, Any]
) -> Path:
    """Copy the template as of `release`, with the answers in its own terms."""
    data = destination.parent / f"{destination.name}-answers.yml"
    data.write_text(yaml.safe_dump(answers_as_of(release, answers)))
    run(
        ["copier", "copy", "--trust", "--defaults", "--vcs-ref", f"v{release}",
         "--data-file", str(data), str(repo), str(destination)],
        destination.parent,
        env_for(answers),
    ).check()  # fmt: skip
    git(destination, "init", "--quiet", "--initial-branch=main")
    commit(destination, f"copy at v{release}")
    return destination


def commit(project: Path, message: str) -> None:
    git(project, "add", "--all")
    git(project, "commit", "--quiet", "--allow-empty", "-m", message)


def update(project: Path, tag: str, answers: dict[str, Any]) -> str:
    return run([*RENOVATE, "--vcs-ref", tag], project, env_for(answers)).check().output


def conflicted_files(project: Path) -> list[str]:
    found = []
    for path in project.rglob("*"):
        parts = path.relative_to(project).parts
        if not path.is_file() or parts[0] in {".git", ".venv"}:
            continue
        if path.suffix == ".rej" or CONFLICT_MARKER.search(
            path.read_text(errors="replace")
        ):
            found.append(str(path.relative_to(project)))
    return found


def test_the_harness_tags_the_working_tree_as_the_next_version(
    template_repo: tuple[Path, str],
) -> None:
    repo, next_tag = template_repo

    tags = git(repo, "tag", "--list").split()

    assert next_tag in tags
    assert {release.tag for release in RELEASES} <= set(tags)
    assert git(repo, "rev-list", "-n1", next_tag) == git(repo, "rev-parse", "HEAD")


def test_every_release_and_every_answer_set_is_update_tested() -> None:
    assert {release for release, _ in UPDATE_PATHS} == set(RELEASES)
    assert {name for _, name in UPDATE_PATHS} == set(ANSWER_SETS)
    assert {name for release, name in UPDATE_PATHS if release == RELEASES[0]} == set(
        ANSWER_SETS
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("release", "answer_set"),
    UPDATE_PATHS,
    ids=[f"{release.tag}-{name}" for release, name in UPDATE_PATHS],
)
def test_update_keeps_owner_edits_and_passes_the_gates(
    template_repo: tuple[Path, str], release: Release, answer_set: str, tmp_path: Path
) -> None:
    repo, next_tag = template_repo
    answers = ANSWER_SETS[answer_set]
    project = copy_at(repo, release.version, tmp_path / "service", answers)
    owner_edits.apply(project, env_for(answers))
    commit(project, "owner edits")

    output = update(project, next_tag, answers)

    assert conflicted_files(project) == [], output
    assert owner_edits.missing_after_update(project) == [], output
    recorded = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert recorded["_commit"] == next_tag
    expected = answers_after_update(release.version, answers)
    assert {k: recorded[k] for k in expected} == expected  # nothing re-defaulted
    ran = MIGRATION_LINE.findall(output)
    crossed = migrations_crossed(release.version, next_tag)
    assert sorted(ran) == sorted(
        (version, stage) for version in crossed for stage in ("before", "after")
    ), output
    run_gates(project, expected, after_update=True)

    commit(project, f"update to {next_tag}")
    again = update(project, next_tag, answers)
    assert git(project, "status", "--porcelain") == "", again


@pytest.mark.slow
def test_a_service_made_before_the_worker_switches_it_on_with_an_update(
    template_repo: tuple[Path, str], tmp_path: Path
) -> None:
    repo, next_tag = template_repo
    before_worker = [r for r in RELEASES if version_key(r.version) < (0, 3, 0)]
    if not before_worker:
        pytest.skip("no recorded release predates the worker")
    release = before_worker[-1]
    answers = {"broker": "redis"}
    project = copy_at(repo, release.version, tmp_path / "service", {})
    env = env_for(answers)

    plain = run([*RENOVATE, "--vcs-ref", next_tag], project, env).check()
    assert not (project / "app" / "worker").exists(), plain.output
    commit(project, "update without the worker")
    switched = run(
        [*RENOVATE, "--vcs-ref", next_tag, "--data", "broker=redis"], project, env
    ).check()

    assert (project / "app" / "worker" / "broker.py").is_file(), switched.output
    assert (
        yaml.safe_load((project / ".copier-answers.yml").read_text())["broker"]
        == "redis"
    )
    run_gates(project, answers, after_update=True)


@pytest.mark.slow
def test_an_owner_change_to_a_line_the_template_changed_is_a_reported_conflict(
    template_repo: tuple[Path, str], tmp_path: Path
) -> None:
    repo, next_tag = template_repo
    oldest = RELEASES[0]
    project = copy_at(repo, oldest.version, tmp_path / "service", {})
    main = project / "app" / "main.py"
    # v0.2.0 rewrote this line (the API moved to app/api/v1.py).
    line = "from app.api import router as api_router\n"
    if line not in main.read_text():
        pytest.skip("the oldest release no longer has the line this test edits")
    main.write_text(
        main.read_text().replace(line, "from app.api import router as public_api\n")
    )
    commit(project, "owner renames the router import")

    update(project, next_tag, {})

    assert "app/main.py" in conflicted_files(project)
    text = main.read_text()
    assert "from app.api import router as public_api" in text
    assert "from app.api import v1" in text
    unmerged = git(project, "ls-files", "--unmerged", "--", "app/main.py")
    assert unmerged.strip(), "the conflict must show in git status"


@pytest.mark.slow
def test_updating_straight_equals_updating_release_by_release(
    template_repo: tuple[Path, str], tmp_path: Path
) -> None:
    repo, next_tag = template_repo
    if len(RELEASES) < 2:
        pytest.skip("needs two recorded releases")
    answers = ANSWER_SETS["py311-sqlite-proprietary"]
    straight = copy_at(repo, RELEASES[0].version, tmp_path / "straight", answers)
    stepwise = copy_at(repo, RELEASES[0].version, tmp_path / "stepwise", answers)

    update(straight, next_tag, answers)
    for release in [*RELEASES[1:], None]:
        update(stepwise, release.tag if release else next_tag, answers)
        commit(stepwise, "step")

    differences = compare(straight, stepwise)
    assert differences == []


def compare(left: Path, right: Path) -> list[str]:
    """Files that differ between two projects (the answers file's _commit aside)."""
    names = set()
    for root in (left, right):
        names |= {
            str(p.relative_to(root))
            for p in root.rglob("*")
            if p.is_file() and p.relative_to(root).parts[0] not in {".git", ".venv"}
        }
    differing = []
    for name in sorted(names):
        a, b = left / name, right / name
        if not (a.exists() and b.exists()):
            differing.append(name)
        elif name == ".copier-answers.yml":
            strip = re.compile(r"^_commit: .*$", re.MULTILINE)
            if strip.sub("", a.read_text()) != strip.sub("", b.read_text()):
                differing.append(name)
        elif not filecmp.cmp(a, b, shallow=False):
            differing.append(name)
    return differing
