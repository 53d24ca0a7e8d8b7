"""`copier update` from every recorded release to the working tree, taken
the way teams take it: with Renovate's command, by teams that work as real
teams do (tests/teams.py), with their data in PostgreSQL.

For every release, two teams take the update: one that keeps the example and
one that removes it on the way (`--data example=false`). They start from the
same service (one copy, one day of the team's work, one database, cloned for
the second team). Each must update with no conflict, keep every edit of its
own byte for byte, and migrate its database with its rows kept and no manual
Alembic step; the template's files of the updated service must equal a fresh
copy of the working tree with the team's edits to them applied. Two of these
paths (FULL_PATHS: the oldest release's team that keeps the example, the
newest release's that removes it) also run the service's own gates and
tests, and update again to check that nothing is left to change: their cost
does not grow with the number of releases. A third team per release (the same
work, no database) also changed a line the release changes: its update stops
with a reported conflict. The three updates run at once.
PRODSTARTER_UPDATE_ALL=1 runs the gates on every path."""

from __future__ import annotations

import difflib
import filecmp
import os
import re
import shutil
from collections.abc import Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import (
    answer_sets,
    effective,
    git,
    interpreter,
    run,
    run_gates,
    tool_env,
)
from tests.support.migrations import (
    answers_after_update,
    answers_as_of,
    migrations_crossed,
    version_key,
)
from tests.support.ownership import owner_of, ownership_table
from tests.support.teams import OPTIONAL_FILE, Team, clone_database, database
from tests.support.template_repo import Release, recorded_releases

RELEASES = recorded_releases()
ANSWER_SETS = answer_sets()


KEEPS, REMOVES = "keeps-the-example", "removes-the-example"
EDITS = "changed-a-line-the-release-changes"


def team_paths(releases: list[Release], sets: list[str]) -> list[tuple[Release, str]]:
    """(release, answer set) for every release: the answer sets taken in
    turn, so that each is updated from some release, but the oldest and the
    newest release (FULL_PATHS) on PostgreSQL."""
    postgres = [
        name
        for name in sets
        if effective(ANSWER_SETS[name])["production_database"] == "postgresql"
    ]
    chosen = [sets[index % len(sets)] for index in range(len(releases))]
    if releases:
        chosen[0], chosen[-1] = postgres[0], postgres[-1]
    return list(zip(releases, chosen, strict=True))


def full_paths(releases: list[Release]) -> set[tuple[str, str]]:
    """The paths that also run the service's gates: the oldest release's
    team that keeps the example (it crosses every migration with it) and the
    newest release's team that removes it (the update services take next)."""
    if os.environ.get("PRODSTARTER_UPDATE_ALL") == "1":
        return {(r.version, team) for r in releases for team in (KEEPS, REMOVES)}
    if not releases:
        return set()
    return {(releases[0].version, KEEPS), (releases[-1].version, REMOVES)}


UPDATE_PATHS = team_paths(RELEASES, sorted(ANSWER_SETS))
FULL_PATHS = full_paths(RELEASES)
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
    repo: Path,
    release: str,
    destination: Path,
    answers: dict[str, Any],
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


def test_every_release_is_updated_and_every_answer_set_is_used() -> None:
    assert [release for release, _ in UPDATE_PATHS] == RELEASES
    assert {name for _, name in UPDATE_PATHS} == set(ANSWER_SETS)
    assert len(FULL_PATHS) <= 2 or os.environ.get("PRODSTARTER_UPDATE_ALL") == "1"


def fresh_copy(
    repo: Path, tag: str, answers: dict[str, Any], destination: Path
) -> Path:
    """The working tree, copied fresh with these answers (today's names)."""
    data = destination.parent / f"{destination.name}-answers.yml"
    data.write_text(yaml.safe_dump(answers))
    # Without the lock task: uv.lock is the one file not compared.
    run(
        ["copier", "copy", "--trust", "--defaults", "--skip-tasks", "--vcs-ref", tag,
         "--data-file", str(data), str(repo), str(destination)],
        destination.parent,
        env_for(answers),
    ).check()  # fmt: skip
    return destination


def template_files_differing(
    updated: Path, fresh: Path, added: Collection[str]
) -> list[str]:
    """The template's files where the updated service and a fresh copy with
    the team's edits differ (uv.lock, the team's own lock, aside), and
    files the update left behind that a fresh copy does not have."""
    rows = ownership_table(fresh)
    differing = []
    for path in sorted(fresh.rglob("*")):
        name = str(path.relative_to(fresh))
        if not path.is_file() or owner_of(rows, name) != "template":
            continue
        if name in {"uv.lock", ".copier-answers.yml"}:
            continue
        theirs = updated / name
        if not (theirs.is_file() and filecmp.cmp(path, theirs, shallow=False)):
            differing.append(name)
    ignored = {".git", ".venv", "var", "__pycache__", ".mypy_cache", ".ruff_cache"}
    for path in sorted(updated.rglob("*")):
        parts = path.relative_to(updated).parts
        name = str(path.relative_to(updated))
        if not path.is_file() or set(parts) & ignored or name in added:
            continue
        left = owner_of(rows, name) == "template" and not (fresh / name).exists()
        if left and name not in {".env", OPTIONAL_FILE, "uv.lock"}:
            differing.append(f"{name} (left behind)")
    answers_of = [
        re.sub(
            r"^_commit: .*$", "", (root / ".copier-answers.yml").read_text(), flags=re.M
        )
        for root in (updated, fresh)
    ]
    if answers_of[0] != answers_of[1]:
        differing.append(".copier-answers.yml")
    return differing


@pytest.mark.slow
@pytest.mark.parametrize(
    ("release", "answer_set"),
    [
        pytest.param(
            release,
            name,
            id=f"{release.tag}-{name}",
            # A path that runs the updated service's gates takes minutes.
            marks=(
                [pytest.mark.long]
                if any(version == release.version for version, _ in FULL_PATHS)
                else []
            ),
        )
        for release, name in UPDATE_PATHS
    ],
)
def test_teams_take_the_update_with_their_edits_and_their_data(
    template_repo: tuple[Path, str],
    release: Release,
    answer_set: str,
    tmp_path: Path,
    subtests: pytest.Subtests,
) -> None:
    repo, next_tag = template_repo
    # The example is each team's choice, not the answer set's.
    answers = {k: v for k, v in ANSWER_SETS[answer_set].items() if k != "example"}
    chosen = effective(answers)
    start = copy_at(repo, release.version, tmp_path / "start", answers)
    with database(chosen["production_database"], tmp_path / "start-db") as db:
        has_worker = (start / "app" / "worker").is_dir()  # as of its release
        founder = Team(start, release.version, env_for(answers), db, has_worker)
        founder.add_invoices()
        founder.edit_template_files()
        founder.migrate_with_data()
        commit(start, "the team's work")
        kept = founder.snapshot()
        with ExitStack() as clones:
            keeps, removes = (
                clones.enter_context(cloned(founder, tmp_path / kind))
                for kind in (KEEPS, REMOVES)
            )
            edits = copied(start, tmp_path / EDITS / "service")
            # The three updates wait mostly on the package index: at once.
            with ThreadPoolExecutor(max_workers=3) as pool:
                jobs = {
                    kind: pool.submit(
                        take_the_update, team, kind, kept, repo, next_tag, answers
                    )
                    for kind, team in ((KEEPS, keeps), (REMOVES, removes))
                }
                jobs[EDITS] = pool.submit(
                    change_a_line_the_release_changes,
                    edits,
                    release.version,
                    repo,
                    next_tag,
                    answers,
                )
            for kind, job in jobs.items():
                with subtests.test(team=kind):
                    job.result()


def copied(project: Path, destination: Path) -> Path:
    """The project's files and history, without its environment."""
    shutil.copytree(
        project,
        destination,
        symlinks=True,
        ignore=shutil.ignore_patterns(".venv", "__pycache__", ".*_cache"),
    )
    return destination


@contextmanager
def cloned(team: Team, folder: Path) -> Iterator[Team]:
    """The same service and database as `team`, for another team (its own
    environment is synced again from uv's cache)."""
    project = copied(team.project, folder / "service")
    with clone_database(team.db, folder) as db:
        yield replace(team, project=project, db=db, added=list(team.added))


def take_the_update(
    team: Team,
    kind: str,
    kept: dict[str, str],
    repo: Path,
    next_tag: str,
    answers: dict[str, Any],
) -> None:
    """A team takes the update with Renovate's command; what it must find."""
    project = team.project
    example = kind == KEEPS
    extra = [] if example else ["--data", "example=false"]
    output = (
        run([*RENOVATE, "--vcs-ref", next_tag, *extra], project, team.env)
        .check()
        .output
    )

    assert conflicted_files(project) == [], output
    ran = MIGRATION_LINE.findall(output)
    crossed = migrations_crossed(team.release, next_tag)
    assert sorted(ran) == sorted(
        (version, stage) for version in crossed for stage in ("before", "after")
    ), output
    recorded = yaml.safe_load((project / ".copier-answers.yml").read_text())
    expected = answers_after_update(team.release, answers)
    assert recorded["_commit"] == next_tag
    assert {k: recorded[k] for k in expected} == expected  # nothing re-defaulted
    assert recorded["example"] is example
    assert team.after_update(kept, example, version_key(next_tag)) == [], output

    fresh = fresh_copy(
        repo, next_tag, {**expected, "example": example}, project.parent / "fresh"
    )
    pyproject = (fresh / "pyproject.toml").read_text()
    (fresh / "pyproject.toml").write_text(
        pyproject.replace(
            '    "greenlet>=3.5",\n', '    "greenlet>=3.5",\n    "humanize>=4.9",\n'
        )
    )
    (fresh / OPTIONAL_FILE).unlink()
    assert template_files_differing(project, fresh, team.added) == []

    if (team.release, kind) not in FULL_PATHS:
        return
    run_gates(project, expected, after_update=True)
    commit(project, f"update to {next_tag}")
    again = run([*RENOVATE, "--vcs-ref", next_tag], project, team.env).check()
    assert git(project, "status", "--porcelain") == "", again.output


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
    recorded = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert recorded["broker"] == "redis"
    expected = {**answers_after_update(release.version, {}), **answers}
    fresh = fresh_copy(repo, next_tag, expected, tmp_path / "fresh")
    assert template_files_differing(project, fresh, added=[]) == []
    # Its template files are a fresh copy's (whose gates and tests run in
    # test_copy, on a real Redis among them): the static gates, and the fast
    # tests of the worker it gained.
    run_gates(project, answers, after_update=True, tests=["tests/worker"])


@pytest.mark.slow
def test_a_service_with_two_alembic_heads_is_repaired_by_the_update(
    template_repo: tuple[Path, str], tmp_path: Path
) -> None:
    """A team's revision followed 0002 at v0.4.x; v0.5.0 brought the
    template's 0003 after 0002 too: two heads, and `python -m app migrate`
    stopped. The update merges them; the database migrates with its rows."""
    repo, next_tag = template_repo
    before = [r for r in RELEASES if (0, 3, 0) <= version_key(r.version) < (0, 5, 0)]
    between = [r for r in RELEASES if (0, 5, 0) <= version_key(r.version) < (0, 7, 0)]
    if not (before and between):
        pytest.skip("needs releases before and after the template's 0003")
    answers: dict[str, Any] = {"python_version": "3.11"}
    project = copy_at(repo, before[-1].version, tmp_path / "service", answers)
    with database("postgresql", tmp_path) as db:
        team = Team(project, before[-1].version, env_for(answers), db, has_worker=True)
        team.add_invoices()
        team.edit_template_files()
        team.migrate_with_data()
        commit(project, "the team's work")
        kept = team.snapshot()
        run([*RENOVATE, "--vcs-ref", between[-1].tag], project, team.env).check()
        # That release's update stopped on the API module (its router header
        # changed beside the team's import): the team resolved it.
        for name in conflicted_files(project):
            team.resolve_keeping_its_lines(name)
        commit(project, f"update to {between[-1].tag}")
        team.uv("sync", "--locked", "--quiet")
        stuck = team.uv(
            "run", "--frozen", "python", "-m", "app", "migrate", check=False
        )
        assert "Multiple head" in stuck.output, stuck.output

        output = (
            run([*RENOVATE, "--vcs-ref", next_tag], project, team.env).check().output
        )

        assert "merged the Alembic heads" in output, output
        assert conflicted_files(project) == [], output
        target = version_key(next_tag)
        assert team.after_update(kept, example=True, target=target) == [], output


def a_line_the_release_changes(old: Path, new: Path) -> tuple[str, str] | None:
    """A line of a template-owned module of app/ that the working tree
    replaces: the line a team changed too, in the release it has."""
    rows = ownership_table(new)
    for path in sorted(old.glob("app/**/*.py")):
        name = str(path.relative_to(old))
        theirs = new / name
        if owner_of(rows, name) != "template" or not theirs.is_file():
            continue
        before, after = path.read_text().splitlines(), theirs.read_text().splitlines()
        matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
        for tag, start, end, _, _ in matcher.get_opcodes():
            for line in before[start:end] if tag == "replace" else []:
                code = line.strip()
                if code and not code.startswith(("#", '"')) and line not in after:
                    return name, line
    return None


def change_a_line_the_release_changes(
    project: Path, release: str, repo: Path, next_tag: str, answers: dict[str, Any]
) -> None:
    """A third team changed a line the release changes too: its update stops
    with the conflict reported (in the file and in git status)."""
    expected = answers_after_update(release, answers)
    fresh = fresh_copy(repo, next_tag, expected, project.parent / "fresh")
    found = a_line_the_release_changes(project, fresh)
    # A release that changes no line of app/ leaves a team's edit merged.
    name, line = found or ("app/main.py", "from __future__ import annotations")
    edited = f"{line}  # changed by the team"
    path = project / name
    path.write_text(path.read_text().replace(f"{line}\n", f"{edited}\n", 1))
    commit(project, "the team changes a template line")

    output = update(project, next_tag, answers)

    assert edited in path.read_text()
    unmerged = git(project, "ls-files", "--unmerged", "--", name)
    if found is None:
        assert conflicted_files(project) == [], output
        return
    assert name in conflicted_files(project), output
    assert unmerged.strip(), "the conflict must show in git status"
