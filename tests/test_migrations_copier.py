"""The migration mechanism (migrations_copier/) on small fixture trees.

Fast unit tests: no copier run, no network. The old and new releases' renders
are written by hand and handed to `_lib.Renders`, so the `after` stage's merges
run on exactly the files a test sets up.
"""

from __future__ import annotations

import ast
import dataclasses
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.migrations import MIGRATIONS, SCRIPT, load
from tests.support import ROOT

# Loaded the way copier runs it: the script puts migrations_copier/ on sys.path
# and imports `_lib` from there.
V0_2_0: Any = load(MIGRATIONS / "v0_2_0.py")
LIB: Any = sys.modules["_lib"]
CHANGES: Any = V0_2_0.CHANGES
# The merge of a moved file, as v0.2.0 ran it while app/api/v1.py was the
# template's: since v0.7.0 the file is the owner's and moves as it is.
MERGING: Any = dataclasses.replace(CHANGES, moved_as_is=())
SCRIPT_V0_2_0 = MIGRATIONS / "v0_2_0.py"

# ---------------------------------------------------------------- fixtures

V0_1_0_ANSWERS = """\
# Changes here will be overwritten by Copier; NEVER EDIT MANUALLY
_commit: v0.1.0
_src_path: gh:example/prodstarter-fastapi
author_email: owners@example.com
author_name: Service Owners
database: sqlite
description: A FastAPI service made from prodstarter-fastapi.
license: proprietary
project_name: Example Service
project_slug: example-service
python_version: '3.12'
"""
MIGRATED_ANSWERS = """\
# Changes here will be overwritten by Copier; NEVER EDIT MANUALLY
_commit: v0.1.0
_src_path: gh:example/prodstarter-fastapi
author_email: owners@example.com
author_name: Service Owners
production_database: sqlite
description: A FastAPI service made from prodstarter-fastapi.
license: LicenseRef-Proprietary
project_name: Example Service
project_slug: example-service
python_version: '3.12'
"""
HALF_MIGRATED_ANSWERS = """\
# Changes here will be overwritten by Copier; NEVER EDIT MANUALLY
_commit: v0.1.0
_src_path: gh:example/prodstarter-fastapi
database: postgresql
license: LicenseRef-Proprietary
production_database: sqlite
python_version: '3.12'
"""
# Edited by hand: comments, quoted values, no newline at the end of the file.
OWNER_ANSWERS = """\
# Changes here will be overwritten by Copier; NEVER EDIT MANUALLY
# Service owned by the payments team.
_commit: v0.1.0
_src_path: gh:example/prodstarter-fastapi

# Production runs on a single node, with a persistent volume.
database: "sqlite"
python_version: "3.12"
license: 'proprietary'"""
OWNER_ANSWERS_MIGRATED = """\
# Changes here will be overwritten by Copier; NEVER EDIT MANUALLY
# Service owned by the payments team.
_commit: v0.1.0
_src_path: gh:example/prodstarter-fastapi

# Production runs on a single node, with a persistent volume.
production_database: "sqlite"
python_version: "3.12"
license: LicenseRef-Proprietary"""

BASE_API = '''\
"""The public API: include each domain's router here."""

from fastapi import APIRouter

from app.items.router import router as items_router

router = APIRouter(prefix="/api/v1")
router.include_router(items_router)
'''
NEW_API = BASE_API.replace(
    '"""The public API: include each domain\'s router here."""',
    '"""Version 1 of the public API (`/api/v1`): include each domain\'s router here."""',
)
OWNER_IMPORT = "from app.orders.router import router as orders_router\n"
OWNER_INCLUDE = "router.include_router(orders_router)\n"
ITEMS_IMPORT = "from app.items.router import router as items_router\n"
OWNER_API = BASE_API.replace(ITEMS_IMPORT, ITEMS_IMPORT + OWNER_IMPORT) + OWNER_INCLUDE
OWNER_API_MOVED = NEW_API.replace(ITEMS_IMPORT, ITEMS_IMPORT + OWNER_IMPORT) + (
    OWNER_INCLUDE
)

OLD_ENV_EXAMPLE = """\
# --- Server (python -m app serve)
SERVER_HOST=127.0.0.1
SERVER_PORT=8000
# Proxies whose X-Forwarded-* headers are trusted (comma-separated)
SERVER_FORWARDED_ALLOW_IPS=127.0.0.1
# Seconds uvicorn waits for in-flight requests on SIGTERM
SERVER_GRACEFUL_SHUTDOWN_TIMEOUT=20
"""
NEW_ENV_EXAMPLE = OLD_ENV_EXAMPLE.replace(
    "SERVER_FORWARDED_ALLOW_IPS=", "SERVER_TRUSTED_PROXIES="
)
OWNER_ENV_EXAMPLE = OLD_ENV_EXAMPLE.replace(
    "=127.0.0.1\n# Seconds", "=10.0.0.0/8\n# Seconds"
)
OWNER_ENV_EXAMPLE_RENAMED = NEW_ENV_EXAMPLE.replace(
    "SERVER_TRUSTED_PROXIES=127.0.0.1", "SERVER_TRUSTED_PROXIES=10.0.0.0/8"
)
OWNER_COMPOSE = """\
services:
  api:
    image: example-service
    environment:
      SERVER_FORWARDED_ALLOW_IPS: "10.0.0.0/8"
      SERVER_FORWARDED_ALLOW_IPS_EXTRA: "kept as it is"
"""
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


def write(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


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
    old = write(
        tmp_path / "render-old",
        {"app/api.py": BASE_API, ".env.example": OLD_ENV_EXAMPLE},
    )
    new = write(
        tmp_path / "render-new",
        {"app/api/v1.py": NEW_API, ".env.example": NEW_ENV_EXAMPLE},
    )
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


# ---------------------------------------------------------------- settings


def test_settings_are_renamed_as_whole_words_only() -> None:
    text = (
        "SERVER_FORWARDED_ALLOW_IPS=10.0.0.0/8\n"
        "export SERVER_FORWARDED_ALLOW_IPS\n"
        '  - name: SERVER_FORWARDED_ALLOW_IPS\n    value: "${SERVER_FORWARDED_ALLOW_IPS}"\n'
        "SERVER_FORWARDED_ALLOW_IPS_EXTRA=1\n"
        "MY_SERVER_FORWARDED_ALLOW_IPS=2\n"
    )

    renamed = LIB.rename_settings(text, CHANGES.renamed_settings)

    assert renamed == (
        "SERVER_TRUSTED_PROXIES=10.0.0.0/8\n"
        "export SERVER_TRUSTED_PROXIES\n"
        '  - name: SERVER_TRUSTED_PROXIES\n    value: "${SERVER_TRUSTED_PROXIES}"\n'
        "SERVER_FORWARDED_ALLOW_IPS_EXTRA=1\n"
        "MY_SERVER_FORWARDED_ALLOW_IPS=2\n"
    )
    assert LIB.rename_settings(renamed, CHANGES.renamed_settings) == renamed


SETTING_FILES_FOUND = [
    ".env",
    ".env.production",
    ".github/workflows/deploy.yml",
    "compose.yaml",
    "deploy/k8s/configmap.yaml",
]


def setting_files_tree(root: Path) -> Path:
    return write(
        root,
        {
            **{
                relative: "SERVER_FORWARDED_ALLOW_IPS=x\n"
                for relative in SETTING_FILES_FOUND
            },
            "app/settings.py": "forwarded_allow_ips: str = '127.0.0.1'\n",
            "README.md": "Set SERVER_FORWARDED_ALLOW_IPS.\n",
            ".git/config": "[core]\n",
            ".git/.env": "SERVER_FORWARDED_ALLOW_IPS=x\n",
            ".venv/.env": "SERVER_FORWARDED_ALLOW_IPS=x\n",
            ".venv/lib/compose.yaml": "SERVER_FORWARDED_ALLOW_IPS=x\n",
        },
    )


def test_setting_files_are_found_where_owners_keep_settings(tmp_path: Path) -> None:
    setting_files_tree(tmp_path)

    found = list(LIB.matching_files(tmp_path, LIB.SETTING_FILES))

    assert sorted(found) == SETTING_FILES_FOUND
    assert len(found) == len(set(found))


def test_nothing_under_git_or_venv_is_ever_a_setting_file(tmp_path: Path) -> None:
    setting_files_tree(tmp_path)

    found = list(LIB.matching_files(tmp_path, ("*",)))

    assert "app/settings.py" in found
    assert not [f for f in found if f.startswith((".git/", ".venv/"))]


# ---------------------------------------------------------------- merge


def test_edits_on_different_lines_merge_cleanly() -> None:
    base = "one\ntwo\nthree\nfour\nfive\n"
    ours = "one\ntwo (owner)\nthree\nfour\nfive\n"
    theirs = "one\ntwo\nthree\nfour\nfive (template)\n"

    merged, conflicted = LIB.merge(ours, base, theirs)

    assert merged == "one\ntwo (owner)\nthree\nfour\nfive (template)\n"
    assert conflicted is False


def test_the_same_line_changed_both_ways_is_a_conflict() -> None:
    base = "one\ntwo\nthree\n"
    ours = "one\ntwo (owner)\nthree\n"
    theirs = "one\ntwo (template)\nthree\n"

    merged, conflicted = LIB.merge(ours, base, theirs)

    assert conflicted is True
    assert merged == (
        "one\n"
        "<<<<<<< before updating\n"
        "two (owner)\n"
        "=======\n"
        "two (template)\n"
        ">>>>>>> after updating\n"
        "three\n"
    )


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


# ---------------------------------------------------------------- conventions


def imported_modules(path: Path) -> set[str]:
    """Top-level names of the modules a Python file imports (absolute imports)."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module.split(".")[0])
    return modules


@pytest.mark.parametrize(
    "path", sorted(MIGRATIONS.glob("*.py")), ids=lambda path: path.name
)
def test_migrations_use_the_standard_library_only(path: Path) -> None:
    siblings = {script.stem for script in MIGRATIONS.glob("_*.py")}
    allowed = {*sys.stdlib_module_names, *siblings, "__future__"}

    assert imported_modules(path) - allowed == set()


MIGRATION_SCRIPTS = sorted(
    path.name for path in MIGRATIONS.glob("v*.py") if SCRIPT.match(path.name)
)
STAGE = re.compile(r"_stage\s*==\s*['\"](before|after)['\"]")


def migrations_wired() -> list[dict[str, Any]]:
    """The release migrations (entries with a version)."""
    config = yaml.safe_load((ROOT / "copier.yml").read_text())
    entries: list[dict[str, Any]] = config["_migrations"]
    return [entry for entry in entries if "version" in entry]


def test_every_update_ends_by_rebuilding_a_conflicted_lock() -> None:
    config = yaml.safe_load((ROOT / "copier.yml").read_text())
    last = config["_migrations"][-1]
    relock = ["{{ _copier_python }}", "{{ _copier_conf.src_path }}/migrations_copier/_relock.py"]  # fmt: skip

    assert "version" not in last  # copier runs it on every update
    assert STAGE.search(last["when"]).group(1) == "after"  # type: ignore[union-attr]
    assert last["command"] == relock
    # And after a copy, before the first commit (which holds the lock), made
    # only by a copy.
    first, committed = config["_tasks"]
    assert first["command"] == relock
    assert committed["command"][1].endswith("/migrations_copier/_first_commit.py")
    assert committed["when"] == "{{ _copier_operation == 'copy' }}"


def wired_script(entry: dict[str, Any]) -> tuple[str, str]:
    """The script and stage a `_migrations` entry runs."""
    version = re.fullmatch(r"v(\d+)\.(\d+)\.(\d+)", str(entry["version"]))
    assert version, f"version {entry['version']!r} is not vX.Y.Z"
    script = "v{}_{}_{}.py".format(*version.groups())
    stage = STAGE.search(str(entry.get("when", "")))
    assert stage, f"{entry} has no explicit `when` stage"
    return script, stage.group(1)


def test_every_wired_migration_runs_an_existing_script_with_copiers_python() -> None:
    entries = migrations_wired()
    assert entries
    for entry in entries:
        script, stage = wired_script(entry)
        assert script in MIGRATION_SCRIPTS, f"{entry['version']}: no {script}"
        command = entry["command"]
        assert isinstance(command, list), entry
        assert command[0] == "{{ _copier_python }}"
        assert (
            command[1] == f"{{{{ _copier_conf.src_path }}}}/migrations_copier/{script}"
        )
        assert command[2] == stage


def test_every_migration_script_is_wired_for_both_stages() -> None:
    wired = {wired_script(entry) for entry in migrations_wired()}
    assert MIGRATION_SCRIPTS
    for script in MIGRATION_SCRIPTS:
        assert {(script, "before"), (script, "after")} <= wired, script


def test_a_service_made_before_the_worker_is_answered_broker_none(
    tmp_path: Path,
) -> None:
    v0_3_0: Any = load(MIGRATIONS / "v0_3_0.py")
    path = tmp_path / ".copier-answers.yml"
    path.write_text(MIGRATED_ANSWERS)

    first = LIB.before(tmp_path, v0_3_0.CHANGES)
    once = path.read_text()
    second = LIB.before(tmp_path, v0_3_0.CHANGES)

    assert once == MIGRATED_ANSWERS + "broker: none\n"
    assert first == ["answered the new question broker: none"]
    assert second == []
    assert path.read_text() == once
    path.write_text(MIGRATED_ANSWERS + "broker: redis\n")
    assert LIB.before(tmp_path, v0_3_0.CHANGES) == []


def test_a_service_made_before_authentication_keeps_its_api_open(
    tmp_path: Path,
) -> None:
    v0_5_0: Any = load(MIGRATIONS / "v0_5_0.py")
    path = tmp_path / ".copier-answers.yml"
    path.write_text(MIGRATED_ANSWERS + "broker: none\n")

    first = LIB.before(tmp_path, v0_5_0.CHANGES)
    once = path.read_text()
    second = LIB.before(tmp_path, v0_5_0.CHANGES)

    assert once == MIGRATED_ANSWERS + "broker: none\nauth: none\nfeature_flags: none\n"
    assert first == [
        "answered the new question auth: none",
        "answered the new question feature_flags: none",
    ]
    assert second == []
    # An owner who already chose keeps the choice.
    path.write_text(MIGRATED_ANSWERS + "auth: oidc\nfeature_flags: openfeature\n")
    assert LIB.before(tmp_path, v0_5_0.CHANGES) == []


# ---------------------------------------------------------------- v0.7.0

V0_7_0: Any = load(MIGRATIONS / "v0_7_0.py")
API_V0_6_0 = '''"""Version 1 of the public API (`/api/v1`): include each domain's router here."""

from fastapi import APIRouter

from app.auth import AUTHENTICATED
from app.errors import problem_responses
from app.items.router import router as items_router
from app.orders.router import router as orders_router

API_PREFIX = "/api/v1"

router = APIRouter(
    prefix=API_PREFIX,
    dependencies=[AUTHENTICATED],
    responses=problem_responses(400, 401, 413, 422, 503),
)
router.include_router(items_router)
router.include_router(orders_router)
'''
API_V0_7_0 = '''"""Version 1 of the public API (`/api/v1`): include each domain's router here."""

from fastapi import APIRouter

from app.items.router import router as items_router
from app.orders.router import router as orders_router

router = APIRouter()
router.include_router(items_router)
router.include_router(orders_router)
'''


def revision_file(revision: str, parents: str) -> str:
    return (
        f'"""a revision"""\n\nrevision: str = "{revision}"\n'
        f"down_revision: str | None = {parents}\n"
    )


def service_with_api(tmp_path: Path, text: str) -> Path:
    (tmp_path / "app" / "api").mkdir(parents=True)
    (tmp_path / "app" / "api" / "v1.py").write_text(text)
    return tmp_path


def test_the_api_module_keeps_the_owners_routers_and_loses_the_guard(
    tmp_path: Path,
) -> None:
    project = service_with_api(tmp_path, API_V0_6_0)

    first = LIB.apply_rewrites(project, V0_7_0.CHANGES.rewrites)
    second = LIB.apply_rewrites(project, V0_7_0.CHANGES.rewrites)

    assert (project / "app/api/v1.py").read_text() == API_V0_7_0
    assert first == ["rewrote app/api/v1.py"]
    assert second == []


def test_an_api_module_from_before_authentication_loses_its_prefix(
    tmp_path: Path,
) -> None:
    old = API_V0_6_0.replace(
        "from app.auth import AUTHENTICATED\nfrom app.errors import problem_responses\n",
        "",
    ).replace(
        "router = APIRouter(\n    prefix=API_PREFIX,\n    dependencies=[AUTHENTICATED],\n"
        "    responses=problem_responses(400, 401, 413, 422, 503),\n)\n",
        "router = APIRouter(prefix=API_PREFIX)\n",
    )
    project = service_with_api(tmp_path, old)

    LIB.apply_rewrites(project, V0_7_0.CHANGES.rewrites)

    assert (project / "app/api/v1.py").read_text() == API_V0_7_0


def test_an_import_the_owners_code_still_uses_is_kept(tmp_path: Path) -> None:
    uses = API_V0_6_0 + "router.include_router(extra, dependencies=[AUTHENTICATED])\n"
    project = service_with_api(tmp_path, uses)

    LIB.apply_rewrites(project, V0_7_0.CHANGES.rewrites)

    text = (project / "app/api/v1.py").read_text()
    assert "from app.auth import AUTHENTICATED\n" in text
    assert "from app.errors import problem_responses\n" not in text
    assert "router = APIRouter()\n" in text


def test_a_router_header_the_owner_changed_is_reported_not_touched(
    tmp_path: Path,
) -> None:
    changed = API_V0_6_0.replace("422, 503", "422, 503, 504")
    project = service_with_api(tmp_path, changed)

    done = LIB.apply_rewrites(project, V0_7_0.CHANGES.rewrites)

    assert (project / "app/api/v1.py").read_text().count("prefix=API_PREFIX") == 1
    assert any("left app/api/v1.py as its owner changed it" in line for line in done)


def test_the_worker_table_revision_creates_it_only_where_it_is_missing(
    tmp_path: Path,
) -> None:
    publications = '    op.create_table(\n        "item_publications",\n    )\n'
    old = (
        f"{V0_7_0.CREATE_WORKER_TABLE}{publications}\n\n"
        f"def downgrade() -> None:\n{V0_7_0.DROP_WORKER_TABLE}"
    )
    path = tmp_path / V0_7_0.WORKER_TABLE
    path.parent.mkdir(parents=True)
    path.write_text(old)

    LIB.apply_rewrites(tmp_path, V0_7_0.CHANGES.rewrites)
    once = path.read_text()
    LIB.apply_rewrites(tmp_path, V0_7_0.CHANGES.rewrites)

    assert once == (
        f"{V0_7_0.CREATE_WORKER_TABLE_IF_MISSING}{publications}\n\n"
        f"def downgrade() -> None:\n{V0_7_0.DROP_PUBLICATIONS}"
    )
    assert path.read_text() == once


def test_two_heads_in_the_services_revisions_are_merged_once(tmp_path: Path) -> None:
    versions = tmp_path / "migrations" / "versions"
    versions.mkdir(parents=True)
    (versions / "0001.py").write_text(revision_file("0001", "None"))
    (versions / "0002.py").write_text(revision_file("0002", '"0001"'))
    (versions / "0003.py").write_text(revision_file("0003", '"0002"'))
    (versions / "abc.py").write_text(revision_file("abc123", '"0002"'))

    first = LIB.merge_service_heads(tmp_path, "0.7.0")
    second = LIB.merge_service_heads(tmp_path, "0.7.0")

    graph = LIB.revision_graph(versions)
    (head,) = LIB.heads_of(graph)
    assert graph[head] == ("0003", "abc123")
    assert [p.name for p in versions.glob("*merge*")] == [f"20261205_{head}.py"]
    assert len(first) == 1
    assert second == []


def test_one_head_needs_no_merge(tmp_path: Path) -> None:
    versions = tmp_path / "migrations" / "versions"
    versions.mkdir(parents=True)
    (versions / "0001.py").write_text(revision_file("0001", "None"))
    (versions / "0003.py").write_text(revision_file("0003", '"0001"'))

    assert LIB.merge_service_heads(tmp_path, "0.7.0") == []
    assert len(list(versions.glob("*.py"))) == 2


# ---------------------------------------------------------------- removing the example

REMOVE: Any = load(MIGRATIONS / "_remove_example.py")
MODELS_V0_1_0 = '''"""Every table."""

from sqlmodel import SQLModel

from app.invoices.models import Invoice as Invoice
from app.items.models import Item

metadata = SQLModel.metadata

__all__ = ["Item", "metadata"]
'''
MODELS_V0_7_0 = '''"""Every table."""

from sqlmodel import SQLModel

from app.invoices.models import Invoice as Invoice
from app.items.models import Item
from app.publications.models import ItemPublication

metadata = SQLModel.metadata

__all__ = [
    "Item",
    "ItemPublication",
    "metadata",
]
'''
MODELS_WITHOUT_EXAMPLE = '''"""Every table."""

from sqlmodel import SQLModel

from app.invoices.models import Invoice as Invoice

metadata = SQLModel.metadata

__all__ = ["metadata"]
'''


@pytest.mark.parametrize(
    ("models", "expected"),
    [
        (MODELS_V0_1_0, MODELS_WITHOUT_EXAMPLE),
        (
            MODELS_V0_7_0,
            MODELS_WITHOUT_EXAMPLE.replace(
                '__all__ = ["metadata"]', '__all__ = [\n    "metadata",\n]'
            ),
        ),
    ],
    ids=["one-line", "listed"],
)
def test_removing_the_example_keeps_the_owners_lines_in_the_seams(
    tmp_path: Path, models: str, expected: str
) -> None:
    write(
        tmp_path,
        {
            "app/models.py": models,
            "app/items/router.py": "",
            "tests/items/test_router.py": "",
            "app/invoices/router.py": "",
        },
    )

    REMOVE.main(tmp_path)

    assert (tmp_path / "app/models.py").read_text() == expected
    assert not (tmp_path / "app/items").exists()
    assert not (tmp_path / "tests/items").exists()
    assert (tmp_path / "app/invoices/router.py").exists()


API_V0_10_0 = '''"""Version 1 of the API: list your routers here."""

from fastapi import APIRouter

from app.invoices.router import router as invoices_router
from app.items.insights import router as items_insights_router
from app.items.router import router as items_router
from app.publications.router import router as publications_router

routers: list[APIRouter] = [
    items_router,
    items_insights_router,
    publications_router,
]
routers.append(invoices_router)
'''


@pytest.mark.parametrize("owners", ["", "    invoices_router,\n"])
def test_removing_the_example_takes_its_routers_out_of_the_list(
    tmp_path: Path, owners: str
) -> None:
    """The routers the copy listed go; the owner's stay; an emptied list
    stays a list."""
    api = API_V0_10_0.replace(
        "    publications_router,\n", "    publications_router,\n" + owners
    )
    write(tmp_path, {"app/api/v1.py": api, "app/items/router.py": ""})

    REMOVE.main(tmp_path)

    text = (tmp_path / "app/api/v1.py").read_text()
    listed = "[\n    invoices_router,\n]" if owners else "[]"
    assert f"routers: list[APIRouter] = {listed}\n" in text
    assert "items_router" not in text
    assert "publications_router" not in text
    assert "routers.append(invoices_router)\n" in text
    compile(text, "v1.py", "exec")


def test_removing_the_example_drops_its_tables_after_the_services_heads(
    tmp_path: Path,
) -> None:
    versions = tmp_path / "migrations" / "versions"
    versions.mkdir(parents=True)
    (versions / "0001.py").write_text(revision_file("0001", "None"))
    (versions / "0003.py").write_text(revision_file("0003", '"0001"'))
    (versions / "abc.py").write_text(revision_file("abc123", '"0003"'))

    first = REMOVE.drop_revision(tmp_path)
    second = REMOVE.drop_revision(tmp_path)

    graph = LIB.revision_graph(versions)
    assert LIB.heads_of(graph) == ["remove_example"]
    assert graph["remove_example"] == ("abc123",)
    assert len(first) == 1
    assert second == []
