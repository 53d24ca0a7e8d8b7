"""Every file a copy writes has one owner, as the service's ARCHITECTURE.md
says ("Who owns which file"), and `copier update` renders exactly the files
the template owns: the owner's files and seams are excluded from updates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.support import ROOT
from tests.support.ownership import owner_of, ownership_table

KINDS = {"template", "owner", "seam"}


def excluded_from_updates() -> set[str]:
    """The paths copier.yml leaves out of `copier update`."""
    config = yaml.safe_load((ROOT / "copier.yml").read_text())
    found = set()
    for entry in config["_exclude"]:
        if "_copier_operation" in entry:
            found |= {
                line.strip().lstrip("/")
                for line in entry.splitlines()
                if line.strip() and "{%" not in line
            }
    return found


def written(project: Path) -> list[str]:
    return sorted(
        str(path.relative_to(project))
        for path in project.rglob("*")
        if path.is_file() and ".git" not in path.relative_to(project).parts
    )


def test_every_file_a_copy_writes_has_an_owner(
    copie: Any, answers: dict[str, Any]
) -> None:
    result = copie.copy(extra_answers=answers)
    assert result.exception is None, result.exception
    project: Path = result.project_dir
    rows = ownership_table(project)

    unowned = [path for path in written(project) if owner_of(rows, path) is None]

    assert rows, "ARCHITECTURE.md has no ownership table"
    assert {owner for _, owner in rows} == KINDS
    assert unowned == []


def test_updates_leave_out_exactly_the_owners_files_and_seams(copie: Any) -> None:
    result = copie.copy()
    assert result.exception is None, result.exception
    rows = ownership_table(result.project_dir)

    theirs = {path for path, owner in rows if owner in {"owner", "seam"}}

    assert theirs == excluded_from_updates()
