"""A task that fails fails the copy or the update: the lock of a service is
never left stale behind an exit code of 0 (Renovate would open its pull
request all the same)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from tests.support import ROOT, committed_copy, git, run, tool_env, user_env
from tests.support.template_repo import recorded_releases

BIN = Path(sys.executable).parent
# A package index that refuses every connection: the registry is down.
INDEX_DOWN = {
    "UV_DEFAULT_INDEX": "http://127.0.0.1:9/simple",
    "UV_INDEX_URL": "http://127.0.0.1:9/simple",
    "UV_NO_CACHE": "1",
}


def test_a_copy_whose_lock_fails_exits_non_zero_and_says_why(tmp_path: Path) -> None:
    destination = tmp_path / "service"

    result = run(
        ["copier", "copy", "--trust", "--defaults", "--vcs-ref", "HEAD",
         str(Path(__file__).resolve().parent.parent), str(destination)],
        tmp_path,
        tool_env(**INDEX_DOWN),
    )  # fmt: skip

    assert result.returncode != 0, result.output
    assert "Connection refused" in result.output
    assert "uv.lock is not up to date" in result.output
    assert "run: uv lock" in result.output


def found_pythons(env: dict[str, str]) -> set[str]:
    listed = run(
        [str(BIN / "uv"), "python", "list", "--only-installed", "--output-format",
         "json"],
        Path.cwd(),
        env,
    ).check()  # fmt: skip
    return {
        "{major}.{minor}".format(**entry["version_parts"])
        for entry in json.loads(listed.output[listed.output.index("[") :])
    }


def test_a_copy_for_a_python_not_here_fails_at_once_in_one_line(
    tmp_path: Path,
) -> None:
    """Not after uv's own download retries and their lines. Offline for
    sure (a proxy that refuses every connection), and no Python uv manages."""
    env = user_env(
        "/usr/bin:/bin",
        UV_PYTHON_INSTALL_DIR=str(tmp_path / "no-managed-pythons"),
        HTTPS_PROXY="http://127.0.0.1:9",
        HTTP_PROXY="http://127.0.0.1:9",
    )
    absent = [v for v in ("3.13", "3.12", "3.11") if v not in found_pythons(env)]
    assert absent, "every supported Python is on /usr/bin: nothing to ask for"
    started = time.monotonic()

    result = run(
        [str(BIN / "copier"), "copy", "--trust", "--defaults", "--vcs-ref", "HEAD",
         "--data", f"python_version={absent[0]}", str(ROOT),
         str(tmp_path / "service")],
        tmp_path,
        env,
    )  # fmt: skip

    assert result.returncode != 0, result.output
    said = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert said == [
        f"error: Python {absent[0]} (the python_version answer) was not found, so"
        " uv.lock was not written: install it, or choose a Python you have with"
        " --data python_version=3.X, then run: uv lock (or fix it and run the"
        " copy again)"
    ], result.output
    assert time.monotonic() - started < 60
    assert not (tmp_path / "service").exists()


@pytest.mark.slow
def test_a_copy_with_the_defaults_runs_on_a_python_here_and_is_committed(
    tmp_path: Path,
) -> None:
    """`--defaults` picks a Python uv finds (3.12 first), so the lock is
    written without a download; the service is a git repository whose first
    commit holds everything, the answers included, as `copier update` and
    pre-commit need."""
    env = user_env("/usr/bin:/bin")
    service = tmp_path / "service"

    run(
        [str(BIN / "copier"), "copy", "--trust", "--defaults", "--vcs-ref", "HEAD",
         f"file://{ROOT}/.git", str(service)],
        tmp_path,
        env,
    ).check()  # fmt: skip

    chosen = (service / ".python-version").read_text().strip()
    assert chosen in found_pythons(env)
    assert (service / "uv.lock").is_file()
    log = git(service, "log", "--format=%s")
    assert log.startswith("Create example-service from prodstarter-fastapi")
    assert len(log.splitlines()) == 1
    assert git(service, "status", "--porcelain") == ""
    assert "uv.lock" in git(service, "ls-files")
    check = run([str(BIN / "copier"), "check-update"], service, env)
    assert check.returncode == 0, check.output


@pytest.mark.slow
def test_an_update_whose_lock_fails_exits_non_zero_and_says_why(
    template_repo: tuple[Path, str], tmp_path: Path
) -> None:
    repo, next_tag = template_repo
    newest = recorded_releases()[-1]
    project = tmp_path / "service"
    committed_copy(str(repo), newest.tag, project, "--data", "python_version=3.11")

    result = run(
        ["copier", "update", "--trust", "--defaults", "--skip-answered",
         "--vcs-ref", next_tag],
        project,
        tool_env(**INDEX_DOWN),
    )  # fmt: skip

    assert result.returncode != 0, result.output
    assert "uv.lock is not up to date: fix the cause, then run: uv lock" in (
        result.output
    )


RELOCK = Path(__file__).resolve().parent.parent / "migrations_copier" / "_relock.py"
# A proxy that refuses every connection: uv reaches no index, only its cache.
NO_NETWORK = {
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "HTTP_PROXY": "http://127.0.0.1:9",
    "UV_HTTP_RETRIES": "0",
}


def test_copiers_scratch_renders_lock_from_the_cache_and_the_service_does_not(
    tmp_path: Path,
) -> None:
    """During an update copier runs the task in its temporary renders too
    (outside git): they lock from uv's cache; the service (a git repository)
    is locked against the index, and fails without it."""
    pyproject = '[project]\nname = "svc"\nversion = "0"\nrequires-python = ">=3.11"\ndependencies = ["pyyaml>=6.0"]\n'  # fmt: skip
    warm, scratch, service = (tmp_path / name for name in ("warm", "scratch", "svc"))
    for folder in (warm, scratch, service):
        folder.mkdir()
        (folder / "pyproject.toml").write_text(pyproject)
    task = [sys.executable, str(RELOCK)]
    run(task, warm, tool_env(COPIER_OPERATION="copy")).check()  # fills the cache
    git(service, "init", "--quiet")

    offline = run(task, scratch, tool_env(COPIER_OPERATION="update", **NO_NETWORK))
    online = run(task, service, tool_env(COPIER_OPERATION="update", **NO_NETWORK))

    assert offline.returncode == 0, offline.output
    assert "pyyaml" in (scratch / "uv.lock").read_text()
    assert online.returncode == 1, online.output
    assert "uv.lock is not up to date" in online.output


FIRST_COMMIT = ROOT / "migrations_copier" / "_first_commit.py"


def first_commit(folder: Path, home: Path) -> str:
    """The copy's task, run where git has no identity of the user's."""
    env = tool_env(HOME=str(home), GIT_CONFIG_NOSYSTEM="1")
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME",
                 "GIT_COMMITTER_EMAIL", "GIT_CONFIG_GLOBAL"):  # fmt: skip
        env.pop(name, None)
    return run(
        [sys.executable, str(FIRST_COMMIT), "Payments Team", "pay@example.com",
         "Create payments-api from prodstarter-fastapi v0.12.0"],
        folder,
        env,
    ).check().output  # fmt: skip


def test_the_first_commit_takes_the_answers_author_without_a_git_identity(
    tmp_path: Path,
) -> None:
    service, home = tmp_path / "service", tmp_path / "home"
    service.mkdir()
    home.mkdir()
    (service / "README.md").write_text("# Payments API\n")

    said = first_commit(service, home)

    assert "first commit: Create payments-api" in said
    log = git(service, "log", "--format=%an <%ae> %s")
    assert log.strip() == (
        "Payments Team <pay@example.com> Create payments-api from"
        " prodstarter-fastapi v0.12.0"
    )
    assert git(service, "status", "--porcelain") == ""


def test_a_copy_inside_a_repository_is_left_to_its_owner(tmp_path: Path) -> None:
    monorepo, home = tmp_path / "monorepo", tmp_path / "home"
    service = monorepo / "services" / "payments"
    service.mkdir(parents=True)
    home.mkdir()
    git(monorepo, "init", "--quiet")
    (service / "README.md").write_text("# Payments API\n")

    said = first_commit(service, home)

    assert "inside a git repository already" in said
    assert not (service / ".git").exists()
