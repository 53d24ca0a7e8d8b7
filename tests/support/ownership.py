"""The ownership table of a rendered service's ARCHITECTURE.md ("Who owns
which file"): template-owned, owner-owned or seam, by path."""

from __future__ import annotations

import re
from pathlib import Path

ROW = re.compile(r"^\| `(?P<path>[^`]+)` \| (?P<owner>template|owner|seam) \|", re.M)


def ownership_table(project: Path) -> list[tuple[str, str]]:
    """(path, owner) rows of the rendered ARCHITECTURE.md, in order."""
    text = (project / "ARCHITECTURE.md").read_text()
    section = text.split("## Who owns which file", 1)[1].split("\n## ", 1)[0]
    return [(m["path"], m["owner"]) for m in ROW.finditer(section)]


def matches(row: str, path: str) -> bool:
    if row == "*":
        return "/" not in path
    if row.endswith("/"):
        return path.startswith(row)
    return path == row


def owner_of(rows: list[tuple[str, str]], path: str) -> str | None:
    return next((owner for row, owner in rows if matches(row, path)), None)
