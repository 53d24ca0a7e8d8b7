"""v0.2.0's migration (migrations_copier/v0_2_0.py) on small fixture trees.

Before: `database` is renamed `production_database` and the license choice
`proprietary` becomes `LicenseRef-Proprietary` in `.copier-answers.yml`.
After: app/api.py moves to app/api/v1.py with the owner's edits, and
`SERVER_FORWARDED_ALLOW_IPS` is renamed `SERVER_TRUSTED_PROXIES`.

Fast unit tests: no copier run, no network. The old and new releases' renders
are fixture trees (tests/fixtures/migrations/v0_2_0/) handed to `_lib.Renders`,
so the `after` stage's merges run on exactly the files a test sets up.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.migration_fixtures import answers, tree, write
from tests.support.migrations import MIGRATIONS, load, load_lib

# Loaded the way copier runs it: the script puts migrations_copier/ on sys.path
# and imports `_lib` from there.
V0_2_0: Any = load(MIGRATIONS / "v0_2_0.py")
LIB: Any = load_lib()
CHANGES: Any = V0_2_0.CHANGES
# The merge of a moved file, as v0.2.0 ran it while app/api/v1.py was the
# template's: since v0.7.0 the file is the owner's and moves as it is.
MERGING: Any = dataclasses.replace(CHANGES, moved_as_is=())
SCRIPT_V0_2_0 = MIGRATIONS / "v0_2_0.py"

# ---------------------------------------------------------------- fixtures

V0_1_0_ANSWERS = answers("v0.1.0")
MIGRATED_ANSWERS = answers("migrated")
HALF_MIGRATED_ANSWERS = answers("half-migrated")
# Edited by hand: comments, quoted values, no newline at the end of the file.
OWNER_ANSWERS = answers("owner-edited")
OWNER_ANSWERS_MIGRATED = answers("owner-edited-migrated")

# The releases' files (v0.1.0 and v0.2.0), the owner's v0.1.0 service, and
# that service as the migration must leave it.
RENDER_OLD = tree("v0_2_0/render-old")
RENDER_NEW = tree("v0_2_0/render-new")
OWNER = tree("v0_2_0/owner")
OWNER_MIGRATED = tree("v0_2_0/owner-migrated")
BASE_API = RENDER_OLD["app/api.py"]
NEW_API = RENDER_NEW["app/api/v1.py"]
OLD_ENV_EXAMPLE = RENDER_OLD[".env.example"]
NEW_ENV_EXAMPLE = RENDER_NEW[".env.example"]
OWNER_API = OWNER["app/api.py"]
OWNER_ENV_EXAMPLE = OWNER[".env.example"]
OWNER_COMPOSE = OWNER["compose.yaml"]
OWNER_API_MOVED = OWNER_MIGRATED["app/api/v1.py"]
OWNER_ENV_EXAMPLE_RENAMED = OWNER_MIGRATED[".env.example"]
# The owner's router, in app/api.py and app/api/v1.py.
OWNER_IMPORT = "from app.orders.router import router as orders_router\n"
OWNER_INCLUDE = "router.include_router(orders_router)\n"


GIT_CONFIG = (
    "-c",
    "user.name=Migration Tests",
    "-c",
    "user.email=tests@example.com",
    "-c",
    "commit.gpgsign=false",
    "-c",
    "core.hooksPath=/dev/null",
)


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *GIT_CONFIG, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"git {' '.join(args)} failed:\n{result.stderr}"
    return result.stdout


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file outside .git, with its bytes."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and ".git" not in path.relative_to(root).parts
    }


def commit_all(project: Path, message: str) -> None:
    git(project, "add", "--all")
    git(project, "commit", "--quiet", "--message", message)


def v0_1_0_service(
    project: Path, api: str = OWNER_API, env_example: str = OWNER_ENV_EXAMPLE
) -> Path:
    """A service generated from v0.1.0, edited by its owner and committed."""
    project.mkdir(parents=True, exist_ok=True)
    git(project, "init", "--quiet")
    write(
        project,
        {
            ".copier-answers.yml": V0_1_0_ANSWERS,
            ".gitignore": ".env\n",
            "app/api.py": api,
            ".env.example": env_example,
            "compose.yaml": OWNER_COMPOSE,
        },
    )
    commit_all(project, "A v0.1.0 service")
    return project


def copier_left(project: Path) -> None:
    """What `copier update` to v0.2.0 leaves before the after stage runs.

    It deleted app/api.py (the new release no longer has it) and wrote the new
    release's files; the owner's uncommitted .env is still there.
    """
    (project / "app/api.py").unlink()
    write(
        project,
        {
            ".copier-answers.yml": MIGRATED_ANSWERS.replace("v0.1.0", "v0.2.0"),
            "app/api/v1.py": NEW_API,
            ".env.example": NEW_ENV_EXAMPLE,
            ".env": "SERVER_FORWARDED_ALLOW_IPS=10.1.2.3\n",
        },
    )


def renders(project: Path, tmp_path: Path) -> Any:
    """Hand-written renders of v0.1.0 (old) and v0.2.0 (new): copier never runs."""
    old = write(tmp_path / "render-old", RENDER_OLD)
    new = write(tmp_path / "render-new", RENDER_NEW)
    return LIB.Renders(project, "unused", tmp_path / "scratch", _old=old, _new=new)


def after_stage(project: Path, rendered: Any) -> list[str]:
    """The after stage's two steps, on the given renders."""
    moved: list[str] = LIB.move_files(project, MERGING, rendered)
    renamed: list[str] = LIB.rename_settings_in_files(project, CHANGES, rendered)
    return [*moved, *renamed]


# ---------------------------------------------------------------- answers (before)


def answers_file(project: Path, text: str) -> Path:
    path = project / ".copier-answers.yml"
    path.write_text(text)
    return path


def test_answers_of_a_v0_1_0_service_are_renamed(tmp_path: Path) -> None:
    path = answers_file(tmp_path, V0_1_0_ANSWERS)

    done = LIB.before(tmp_path, CHANGES)

    # The two migrated lines change; every other line stays byte-identical.
    assert path.read_bytes() == MIGRATED_ANSWERS.encode()
    assert done == [
        "renamed database to production_database",
        "license: proprietary is now LicenseRef-Proprietary",
    ]
    answers = yaml.safe_load(path.read_text())
    assert answers["production_database"] == "sqlite"
    assert answers["license"] == "LicenseRef-Proprietary"
    assert "database" not in answers
    assert answers["python_version"] == "3.12"


def test_answers_already_migrated_are_left_alone(tmp_path: Path) -> None:
    path = answers_file(tmp_path, MIGRATED_ANSWERS)
    written = path.stat().st_mtime_ns

    assert LIB.before(tmp_path, CHANGES) == []

    assert path.read_bytes() == MIGRATED_ANSWERS.encode()
    assert path.stat().st_mtime_ns == written  # not even rewritten


def test_half_migrated_answers_keep_the_new_answer(tmp_path: Path) -> None:
    path = answers_file(tmp_path, HALF_MIGRATED_ANSWERS)

    done = LIB.before(tmp_path, CHANGES)

    assert path.read_text() == HALF_MIGRATED_ANSWERS.replace(
        "database: postgresql\n", ""
    )
    assert yaml.safe_load(path.read_text())["production_database"] == "sqlite"
    assert done == ["dropped database (already answered as production_database)"]


def test_answers_edited_by_the_owner_are_migrated(tmp_path: Path) -> None:
    path = answers_file(tmp_path, OWNER_ANSWERS)

    LIB.before(tmp_path, CHANGES)

    assert path.read_text() == OWNER_ANSWERS_MIGRATED
    answers = yaml.safe_load(path.read_text())
    assert answers["production_database"] == "sqlite"
    assert answers["license"] == "LicenseRef-Proprietary"


@pytest.mark.parametrize(
    "text",
    [V0_1_0_ANSWERS, MIGRATED_ANSWERS, HALF_MIGRATED_ANSWERS, OWNER_ANSWERS],
    ids=["v0.1.0", "migrated", "half-migrated", "owner-modified"],
)
def test_migrating_answers_twice_changes_nothing(tmp_path: Path, text: str) -> None:
    path = answers_file(tmp_path, text)
    LIB.before(tmp_path, CHANGES)
    once = path.read_bytes()

    assert LIB.before(tmp_path, CHANGES) == []
    assert path.read_bytes() == once


def test_an_old_choice_followed_by_a_comment_is_migrated(tmp_path: Path) -> None:
    path = answers_file(
        tmp_path,
        V0_1_0_ANSWERS.replace(
            "license: proprietary\n", "license: proprietary  # legal\n"
        ),
    )

    LIB.before(tmp_path, CHANGES)

    assert yaml.safe_load(path.read_text())["license"] == "LicenseRef-Proprietary"


# ---------------------------------------------------------------- files (after)


def test_a_moved_file_keeps_the_owners_edits_and_settings_are_renamed(
    tmp_path: Path,
) -> None:
    project = v0_1_0_service(tmp_path / "service")
    copier_left(project)
    rendered = renders(project, tmp_path)

    done = after_stage(project, rendered)

    moved = (project / "app/api/v1.py").read_text()
    assert '"""Version 1 of the public API (`/api/v1`)' in moved
    assert OWNER_IMPORT in moved
    assert OWNER_INCLUDE in moved
    assert moved == OWNER_API_MOVED
    assert not (project / "app/api.py").exists()
    env_example = (project / ".env.example").read_text()
    assert "SERVER_TRUSTED_PROXIES=10.0.0.0/8\n" in env_example
    assert env_example == OWNER_ENV_EXAMPLE_RENAMED
    assert (project / ".env").read_text() == "SERVER_TRUSTED_PROXIES=10.1.2.3\n"
    compose = (project / "compose.yaml").read_text()
    assert compose == OWNER_COMPOSE.replace(
        'SERVER_FORWARDED_ALLOW_IPS: "10.0.0.0/8"',
        'SERVER_TRUSTED_PROXIES: "10.0.0.0/8"',
    )
    assert done == [
        "moved app/api.py to app/api/v1.py (owner edits merged)",
        "renamed SERVER_FORWARDED_ALLOW_IPS to SERVER_TRUSTED_PROXIES in "
        ".env, .env.example, compose.yaml",
    ]


def test_the_api_module_moves_as_the_owner_left_it_now_that_it_is_a_seam(
    tmp_path: Path,
) -> None:
    project = v0_1_0_service(tmp_path / "service")
    owners = (project / "app/api.py").read_text()
    copier_left(project)

    done = LIB.move_files(project, CHANGES, renders(project, tmp_path))

    assert (project / "app/api/v1.py").read_text() == owners
    assert not (project / "app/api.py").exists()
    assert done == ["moved app/api.py to app/api/v1.py (owner edits merged)"]


def test_running_the_after_stage_twice_changes_no_file(tmp_path: Path) -> None:
    project = v0_1_0_service(tmp_path / "service")
    copier_left(project)
    rendered = renders(project, tmp_path)
    after_stage(project, rendered)
    once = snapshot(project)

    after_stage(project, rendered)

    assert snapshot(project) == once


def test_the_after_stage_is_a_no_op_once_the_update_is_committed(
    tmp_path: Path,
) -> None:
    project = v0_1_0_service(tmp_path / "service")
    copier_left(project)
    rendered = renders(project, tmp_path)
    after_stage(project, rendered)
    commit_all(project, "Update to v0.2.0")
    assert git(project, "ls-tree", "--name-only", "HEAD", "app/api.py") == ""
    committed = snapshot(project)

    assert after_stage(project, rendered) == []

    assert snapshot(project) == committed
    assert git(project, "status", "--porcelain") == ""


def test_a_moved_file_the_owner_never_edited_is_the_new_release(
    tmp_path: Path,
) -> None:
    project = v0_1_0_service(
        tmp_path / "service", api=BASE_API, env_example=OLD_ENV_EXAMPLE
    )
    copier_left(project)

    done = after_stage(project, renders(project, tmp_path))

    assert (project / "app/api/v1.py").read_text() == NEW_API
    assert not (project / "app/api.py").exists()
    assert (project / ".env.example").read_text() == NEW_ENV_EXAMPLE
    # Copier already left exactly the new release: nothing to report moving.
    assert not any(line.startswith("moved") for line in done)


def test_a_service_that_never_had_the_old_file_is_left_alone(tmp_path: Path) -> None:
    project = tmp_path / "service"
    project.mkdir()
    git(project, "init", "--quiet")
    write(
        project,
        {
            ".copier-answers.yml": MIGRATED_ANSWERS,
            "app/api/v1.py": OWNER_API_MOVED,
            ".env.example": OWNER_ENV_EXAMPLE_RENAMED,
        },
    )
    commit_all(project, "A v0.2.0 service")
    before = snapshot(project)

    assert after_stage(project, renders(project, tmp_path)) == []

    assert snapshot(project) == before


def test_a_moved_file_edited_on_the_changed_line_shows_conflict_markers(
    tmp_path: Path,
) -> None:
    owner_docstring = '"""Our public API (orders and items)."""'
    project = v0_1_0_service(
        tmp_path / "service",
        api=OWNER_API.replace(BASE_API.splitlines()[0], owner_docstring),
    )
    copier_left(project)

    done = after_stage(project, renders(project, tmp_path))

    moved = (project / "app/api/v1.py").read_text()
    assert f"<<<<<<< before updating\n{owner_docstring}\n=======\n" in moved
    assert ">>>>>>> after updating\n" in moved
    assert OWNER_INCLUDE in moved
    assert (
        done[0] == "moved app/api.py to app/api/v1.py (owner edits merged, CONFLICTS)"
    )
    # Listed by git as unmerged, like copier's own conflicts.
    unmerged = git(project, "ls-files", "--unmerged", "--", "app/api/v1.py")
    assert {line.split()[2] for line in unmerged.splitlines()} == {"1", "2", "3"}


def test_a_conflict_copier_marked_on_a_renamed_setting_is_resolved(
    tmp_path: Path,
) -> None:
    project = v0_1_0_service(tmp_path / "service")
    copier_left(project)
    # Copier's own merge conflicted on the renamed line: markers in the file,
    # and the file unmerged in the index.
    conflicted = OWNER_ENV_EXAMPLE.replace(
        "SERVER_FORWARDED_ALLOW_IPS=10.0.0.0/8\n",
        "<<<<<<< before updating\nSERVER_FORWARDED_ALLOW_IPS=10.0.0.0/8\n=======\n"
        "SERVER_TRUSTED_PROXIES=127.0.0.1\n>>>>>>> after updating\n",
    )
    (project / ".env.example").write_text(conflicted)
    index = [f"0 {'0' * 40}\t.env.example\n"]
    sides = ((1, OLD_ENV_EXAMPLE), (2, OWNER_ENV_EXAMPLE), (3, NEW_ENV_EXAMPLE))
    for stage, text in sides:
        blob = write(tmp_path, {f"stage{stage}": text}) / f"stage{stage}"
        sha = git(project, "hash-object", "-w", str(blob)).strip()
        index.append(f"100644 {sha} {stage}\t.env.example\n")
    subprocess.run(
        ["git", "update-index", "--index-info"],
        cwd=project,
        input="".join(index),
        text=True,
        check=True,
    )
    assert git(project, "ls-files", "--unmerged", "--", ".env.example")

    LIB.rename_settings_in_files(project, CHANGES, renders(project, tmp_path))

    assert (project / ".env.example").read_text() == OWNER_ENV_EXAMPLE_RENAMED
    assert git(project, "ls-files", "--unmerged", "--", ".env.example") == ""


def test_a_service_in_a_subfolder_of_a_repository_keeps_the_owners_edits(
    tmp_path: Path,
) -> None:
    repository = tmp_path / "monorepo"
    repository.mkdir()
    git(repository, "init", "--quiet")
    project = write(repository / "services/orders", {})
    write(
        project,
        {
            ".copier-answers.yml": V0_1_0_ANSWERS,
            ".gitignore": ".env\n",
            "app/api.py": OWNER_API,
            ".env.example": OWNER_ENV_EXAMPLE,
            "compose.yaml": OWNER_COMPOSE,
        },
    )
    commit_all(repository, "A v0.1.0 service in a monorepo")
    copier_left(project)

    after_stage(project, renders(project, tmp_path))

    assert (project / "app/api/v1.py").read_text() == OWNER_API_MOVED
    assert (project / ".env.example").read_text() == OWNER_ENV_EXAMPLE_RENAMED


def test_a_second_after_stage_reports_nothing_to_change(tmp_path: Path) -> None:
    project = v0_1_0_service(tmp_path / "service")
    copier_left(project)
    rendered = renders(project, tmp_path)
    after_stage(project, rendered)

    assert after_stage(project, rendered) == []


# ---------------------------------------------------------------- command line


def run_script(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT_V0_2_0), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_the_before_script_prints_one_line_then_nothing_to_change(
    tmp_path: Path,
) -> None:
    answers_file(tmp_path, V0_1_0_ANSWERS)

    first = run_script("before", "--project", str(tmp_path), cwd=tmp_path)
    second = run_script("before", "--project", str(tmp_path), cwd=tmp_path)

    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("migration 0.2.0 (before): ")
    assert "renamed database to production_database" in lines[0]
    assert (tmp_path / ".copier-answers.yml").read_text() == MIGRATED_ANSWERS
    assert second.returncode == 0, second.stderr
    assert second.stdout == "migration 0.2.0 (before): nothing to change\n"


def test_the_after_script_needs_the_template(tmp_path: Path) -> None:
    answers_file(tmp_path, MIGRATED_ANSWERS)

    result = run_script("after", "--project", str(tmp_path), cwd=tmp_path)

    assert result.returncode != 0
    assert "--template" in result.stderr
    assert result.stdout == ""
