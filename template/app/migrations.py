"""Run alembic migrations from code (start-up on the embedded default, CLI).

alembic is imported only when a migration runs: it costs ~0.4 s of start-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Your revisions; the template's are in migrations/template, a branch of
# their own (label "template") that never follows or precedes yours.
SERVICE_VERSIONS = PROJECT_ROOT / "migrations" / "versions"
# Tables made and changed only by the template's branch: autogenerate leaves
# them alone whether or not their models are imported (the worker's exist
# even without a broker, so switching one on later finds them).
TEMPLATE_TABLES = frozenset({"processed_messages"})


def alembic_config(database_url: str) -> Config:
    from alembic.config import Config

    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    # Tell env.py not to reconfigure logging: the service already did.
    config.attributes["configure_logging"] = False
    return config


def upgrade(database_url: str, revision: str = "heads") -> None:
    """Apply every branch's revisions up to `revision` (all heads: the
    template's and yours)."""
    from alembic import command
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (
        None,
        "",
        ":memory:",
    ):
        # A SQLite file's folder (var/ on the embedded default) may not exist yet.
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(database_url), revision)
