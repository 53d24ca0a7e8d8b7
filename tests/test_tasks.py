"""A task that fails fails the copy or the update: the lock of a service is
never left stale behind an exit code of 0 (Renovate would open its pull
request all the same)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import git, run, tool_env
from tests.template_repo import recorded_releases

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


@pytest.mark.slow
def test_an_update_whose_lock_fails_exits_non_zero_and_says_why(
    template_repo: tuple[Path, str], tmp_path: Path
) -> None:
    repo, next_tag = template_repo
    newest = recorded_releases()[-1]
    project = tmp_path / "service"
    run(
        ["copier", "copy", "--trust", "--defaults", "--vcs-ref", newest.tag,
         "--data", "python_version=3.11", str(repo), str(project)],
        tmp_path,
        tool_env(),
    ).check()  # fmt: skip
    git(project, "init", "--quiet", "--initial-branch=main")
    git(project, "add", "--all")
    git(project, "commit", "--quiet", "-m", "copy")

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
