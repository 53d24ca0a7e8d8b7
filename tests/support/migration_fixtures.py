"""The fixture trees of the migration scripts' unit tests
(tests/fixtures/migrations/), and writing them into a test's folder.

A tree on disk holds a service's files under their own paths, except that a
Python file is stored as `NAME.py.txt`: the template repo's own gates
(black, ruff, mypy, pytest) would otherwise take it for one of theirs.
"""

from __future__ import annotations

from pathlib import Path

from tests.support import ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "migrations"
STORED_SUFFIX = ".txt"


def tree(case: str) -> dict[str, str]:
    """Every file of a fixture tree, by the path it has in a service."""
    root = FIXTURES / case
    files = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            relative = path.relative_to(root).as_posix()
            if relative.endswith(".py" + STORED_SUFFIX):
                relative = relative.removesuffix(STORED_SUFFIX)
            files[relative] = path.read_text()
    return files


def answers(name: str) -> str:
    """A `.copier-answers.yml` of tests/fixtures/migrations/answers/."""
    return (FIXTURES / "answers" / f"{name}.yml").read_text()


def write(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def revision_file(revision: str, parents: str) -> str:
    """An Alembic revision with only its identifiers (`parents` as Python)."""
    return (
        f'"""a revision"""\n\nrevision: str = "{revision}"\n'
        f"down_revision: str | None = {parents}\n"
    )
