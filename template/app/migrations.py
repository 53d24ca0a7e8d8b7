"""Run alembic migrations from code (start-up on the embedded default, CLI).

alembic is imported only when a migration runs: it costs ~0.4 s of start-up.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
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

    from app.db import sqlite_file

    turn: AbstractContextManager[None] = nullcontext()
    if (file := sqlite_file(make_url(database_url))) is not None:
        turn = one_at_a_time(Path(f"{file}.migrate-lock"))
    with turn:
        command.upgrade(alembic_config(database_url), revision)


@contextmanager
def one_at_a_time(lock_file: Path) -> Iterator[None]:
    """Processes that start together (SERVER_WORKERS > 1, each migrating at
    start-up) upgrade a SQLite file one after the other: the later ones find
    the work done, instead of applying a revision a second time. (A lock on
    the file's side: SQLite's own locks last one transaction, and a revision
    may take several.) Without fcntl (Windows), no lock."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def downgrade(database_url: str, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(database_url), revision)
