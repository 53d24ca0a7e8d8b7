"""Task after `copier update --data example=false`: remove the example.

The example (items; with a broker, publications) is the owner's from the
copy on, so updates never render it, and setting the answer to false does
not delete it by itself. This task does, once: it deletes the example's
folders, takes its lines out of the seams (app/api/v1.py, app/models.py,
app/plugins.py), and, where the example's revisions exist, writes a revision
of the service's that drops its tables, so every database, migrated or not,
ends without them and `python -m app migrate` needs no manual step. The
example's revisions stay: databases have run them.

Idempotent: once the example is gone it finds nothing to do. Standard
library only; run from the project's root.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _lib import SERVICE_VERSIONS, heads_of, revision_graph

FOLDERS = ("app/items", "app/publications", "tests/items", "tests/publications")
# Lines the copy wrote into the seams for the example.
SEAM_LINES = {
    "app/api/v1.py": (
        r"from app\.(items|publications)(\.\w+)* import .*",
        r"router\.include_router\((items_router|items_insights_router|publications_router)\)",
        # Since v0.10.0, the file lists its routers.
        r"    (items_router|items_insights_router|publications_router),",
    ),
    "app/models.py": (
        r"from app\.(items|publications)\.models import .*",
        r'    "(Item|ItemPublication)",',
    ),
    "app/plugins.py": (
        r"    # The example's background task \(app/publications\)\.",
        r'    Plugin\(name="publications", task_modules=\["app\.publications\.tasks"\]\),',
        r"    # The example's flagged route \(app/items/insights\.py\)\.",
        r'    Plugin\(name="items", flags=\{"items-summary": False\}\),',
    ),
}
EXAMPLE_ROOT = "0001"  # the example's first revision: it created `items`
DROP = '''"""remove the example: drop its tables

Written by the template's task for `copier update --data example=false`.

Revision ID: remove_example
Revises: {names}
Create Date: 2026-12-05 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

# The example's revisions: its tables are theirs.
EXAMPLE = ("0001", "0002", "0003", "0004")
revision: str = "remove_example"
down_revision: str | Sequence[str] | None = {parents}
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    for table in ("item_publications", "items"):
        if table in existing:
            op.drop_table(table)


def downgrade() -> None:
    # Back where the example's revisions left its tables (its code is gone,
    # its history is not): their upgrades run again, oldest first.
    history = context.script.iterate_revisions(revision, "base")
    for script in reversed(list(history)):
        if script.revision in EXAMPLE:
            script.module.upgrade()
'''


def remove_lines(text: str, patterns: tuple[str, ...]) -> str:
    """Drop whole lines matching a pattern, and a blank line the removal
    leaves doubled."""
    lines = text.splitlines(keepends=True)
    kept: list[str] = []
    for line in lines:
        if any(re.fullmatch(pattern, line.rstrip("\n")) for pattern in patterns):
            continue
        if line.strip() == "" and kept and kept[-1].strip() == "":
            continue
        kept.append(line)
    result = "".join(kept)
    # The example's names in a one-line `__all__` (releases before 0.3.0).
    result = re.sub(
        r'(__all__ = \[[^\]\n]*?)"(?:Item|ItemPublication)", ', r"\1", result
    )
    # A list whose last entry went keeps valid syntax: `[\n]` becomes `[]`.
    return re.sub(r"= \[\n\]", "= []", result)


def drop_revision(project: Path) -> list[str]:
    folder = project / SERVICE_VERSIONS
    graph = revision_graph(folder) if folder.is_dir() else {}
    if EXAMPLE_ROOT not in graph or "remove_example" in graph:
        return []
    heads = heads_of(graph)
    parents = (
        f'"{heads[0]}"'
        if len(heads) == 1
        else f"({', '.join(repr(h) for h in heads)})".replace("'", '"')
    )
    path = folder / "20261205_remove_example.py"
    path.write_text(DROP.format(names=", ".join(heads), parents=parents))
    return [f"wrote {path.relative_to(project)} (drops the example's tables)"]


def main(project: Path) -> int:
    done = []
    for folder in FOLDERS:
        if (project / folder).is_dir():
            shutil.rmtree(project / folder)
            done.append(f"deleted {folder}/")
    for name, patterns in SEAM_LINES.items():
        path = project / name
        if path.is_file():
            text = path.read_text()
            changed = remove_lines(text, patterns)
            if changed != text:
                path.write_text(changed)
                done.append(f"took the example out of {name}")
    done += drop_revision(project)
    print(f"remove the example: {'; '.join(done) if done else 'nothing to do'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path.cwd()))
