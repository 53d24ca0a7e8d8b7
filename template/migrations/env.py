"""Alembic environment: async engine, URL from the service settings.

New revisions (`alembic revision`, with or without --autogenerate) go to
migrations/versions, after every head of yours there (several heads are
merged by the new revision), numbered after yours (0004, then 0005; files
`YYYYMMDD_NNNN_message.py`, alembic.ini's file_template); the template's
branch in migrations/template is never their parent, and its tables are
never compared.
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig
from pathlib import Path
from typing import Any

from alembic import context
from alembic.operations.ops import MigrationScript
from alembic.script import ScriptDirectory
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from app.migrations import SERVICE_VERSIONS, TEMPLATE_TABLES
from app.models import metadata
from app.settings import load_settings

config = context.config

if config.config_file_name and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name)

target_metadata = metadata


def database_url() -> str:
    return config.get_main_option("sqlalchemy.url") or load_settings().database.url


def include_object(
    _: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Autogenerate never touches the template's tables, in the database or
    in the models."""
    return not (type_ == "table" and name in TEMPLATE_TABLES)


def service_versions(script: ScriptDirectory) -> Path:
    """migrations/versions beside this file (the service's revisions)."""
    return Path(script.dir) / SERVICE_VERSIONS.name


def service_heads(script: ScriptDirectory) -> tuple[str, ...]:
    """The heads of the revisions in migrations/versions (the service's)."""
    folder = service_versions(script).resolve()
    return tuple(
        revision.revision
        for revision in script.get_revisions("heads")
        if revision is not None
        and revision.path is not None
        and Path(revision.path).resolve().parent == folder
    )


def next_service_id(script: ScriptDirectory) -> str:
    """The id of a new revision of the service's: the next four-digit number
    (0001, 0002...), as the template's own are numbered (template_0001), not
    Alembic's random hex. Two pull requests that each add 0005 meet as
    "Revision 0005 is present more than once": renumber the later one (its
    file name, `revision` and the next one's `down_revision`)."""
    folder = service_versions(script).resolve()
    numbers = [
        int(revision.revision[:4])
        for revision in script.walk_revisions()
        if revision.path is not None
        and Path(revision.path).resolve().parent == folder
        and revision.revision[:4].isdigit()
    ]
    return f"{max(numbers, default=0) + 1:04d}"


def place_new_revisions(_: object, revision: object, directives: list[Any]) -> None:
    """A new revision of the service's: in migrations/versions, after the
    service's own heads (a new base when there are none yet), unless the
    command named --head or --version-path itself."""
    script = ScriptDirectory.from_config(config)
    for directive in directives:
        if not isinstance(directive, MigrationScript):
            continue
        if directive.version_path is None:
            directive.version_path = str(service_versions(script))
        if directive.head in (None, "head"):
            heads = service_heads(script)
            # Alembic takes several heads here (a merge) though it types one.
            directive.head = heads if len(heads) > 1 else (heads or ("base",))[0]  # type: ignore[assignment]
        if not getattr(config.cmd_opts, "rev_id", None):
            directive.rev_id = next_service_id(script)


def options() -> dict[str, Any]:
    return {
        "target_metadata": target_metadata,
        "include_object": include_object,
        "process_revision_directives": place_new_revisions,
        # Autogenerate writes sqlmodel.AutoString, a name mypy knows.
        "user_module_prefix": "sqlmodel.",
    }


def run_migrations_offline() -> None:
    """Emit SQL to stdout instead of running it (`alembic upgrade --sql`)."""
    url = database_url()
    context.configure(
        url=url,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
        **options(),
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        **options(),
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online() -> None:
    engine = create_async_engine(database_url(), poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(do_run_migrations)
    await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
