"""Migration to v0.7.0.

v0.7.0 splits the service into files the template owns and files the owner
owns (the example, migrations/versions, and the seams app/api/v1.py,
app/models.py, app/plugins.py, app/own_settings.py): updates no longer
render the owner's, so they keep them exactly as they are. Two of those
files hold text an earlier release wrote that v0.7.0 changes (after stage):

- app/api/v1.py built the /api/v1 router itself (prefix, token check,
  problem responses); app/api/__init__.py does that now, so the file keeps
  only the owner's list of routers.
- migrations/versions' revision 0002 created the worker's table, which the
  template's own branch (migrations/template) creates from now on: 0002
  creates it only where it is missing, whichever branch runs first.

The new seams app/plugins.py and app/own_settings.py are added (from the
new release's render; no example task where the service has none), and the
example's test factories move from the template's tests/fixtures/factories.py
(now the template's own) to tests/items/factories.py, its tests importing
them from there.
Services whose own revisions and the template's 0003 both followed an earlier
revision have two heads in migrations/versions: they are merged.
The new question `example` keeps its default (true): the example is there.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _lib import Changes, Rewrite, committed, main
from _remove_example import SEAM_LINES, remove_lines

API = "app/api/v1.py"
ROUTER_v0_5 = """API_PREFIX = "/api/v1"

router = APIRouter(
    prefix=API_PREFIX,
    dependencies=[AUTHENTICATED],
    responses=problem_responses(400, 401, 413, 422, 503),
)
"""
ROUTER_v0_2 = """API_PREFIX = "/api/v1"

router = APIRouter(prefix=API_PREFIX)
"""
WORKER_TABLE = "migrations/versions/20261126_0002_background_tasks.py"
CREATE_WORKER_TABLE = """def upgrade() -> None:
    op.create_table(
        "processed_messages",
        sa.Column("key", sqlmodel.AutoString(length=200), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
"""
CREATE_WORKER_TABLE_IF_MISSING = """def upgrade() -> None:
    # The template's own branch (migrations/template) makes this table too,
    # and either may run first.
    if not sa.inspect(op.get_bind()).has_table("processed_messages"):
        op.create_table(
            "processed_messages",
            sa.Column("key", sqlmodel.AutoString(length=200), nullable=False),
            sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("key"),
        )
"""
DROP_WORKER_TABLE = """    op.drop_table("item_publications")
    op.drop_table("processed_messages")
"""
DROP_PUBLICATIONS = """    # processed_messages belongs to the template's branch from now on.
    op.drop_table("item_publications")
"""


def plug_in_only_the_example_there_is(project: Path) -> list[str]:
    """The new app/plugins.py names the example's task module; a service
    without app/publications (made before it, or without a broker then)
    must not import it."""
    plugins = project / "app" / "plugins.py"
    if (project / "app" / "publications").is_dir() or not plugins.is_file():
        return []
    text = plugins.read_text()
    changed = remove_lines(text, SEAM_LINES["app/plugins.py"])
    if changed == text:
        return []
    plugins.write_text(changed)
    return ["app/plugins.py plugs in no publications (the service has none)"]


def keep_the_example_factories(project: Path) -> list[str]:
    """The example's tests import their factories from the template's
    tests/fixtures/factories.py, which makes the template's own test notes
    from now on: the factories they were written against (the service's
    last committed file) move beside them, to tests/items/factories.py."""
    target = project / "tests" / "items" / "factories.py"
    if target.exists() or not target.parent.is_dir():
        return []
    factories = committed(project, "tests/fixtures/factories.py")
    if factories is None or "create_item" not in factories:
        return []
    target.write_text(factories)
    return ["moved the example's test factories to tests/items/factories.py"]


CHANGES = Changes(
    version="0.7.0",
    rewrites=(
        Rewrite(API, ROUTER_v0_5, "router = APIRouter()\n"),
        Rewrite(API, ROUTER_v0_2, "router = APIRouter()\n"),
        Rewrite(API, "from app.auth import AUTHENTICATED\n", "", "AUTHENTICATED"),
        Rewrite(
            API, "from app.errors import problem_responses\n", "", "problem_responses"
        ),
        Rewrite(WORKER_TABLE, CREATE_WORKER_TABLE, CREATE_WORKER_TABLE_IF_MISSING),
        Rewrite(
            "tests/items/test_router.py",
            "from tests.fixtures.factories import",
            "from tests.items.factories import",
        ),
        # Sorted as isort sorts them: tests.fixtures before tests.items.
        Rewrite(
            "tests/items/test_service.py",
            "from tests.fixtures.factories import create_item\n"
            "from tests.fixtures.identity import ALICE, BOB\n",
            "from tests.fixtures.identity import ALICE, BOB\n"
            "from tests.items.factories import create_item\n",
        ),
        Rewrite(
            "tests/items/test_service.py",
            "from tests.fixtures.factories import",
            "from tests.items.factories import",
        ),
        Rewrite(WORKER_TABLE, DROP_WORKER_TABLE, DROP_PUBLICATIONS),
    ),
    merge_service_heads=True,
    added_owner_files=("app/plugins.py", "app/own_settings.py"),
    after_steps=(plug_in_only_the_example_there_is, keep_the_example_factories),
)

if __name__ == "__main__":
    sys.exit(main(CHANGES))
