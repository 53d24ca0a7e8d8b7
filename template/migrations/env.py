"""Alembic environment: async engine, URL from the service settings.

New revisions (`alembic revision`, with or without --autogenerate) go to
migrations/versions, after every head of yours there (several heads are
merged by the new revision), numbered after yours (0005, 0006...; files
`YYYYMMDD_NNNN_message.py`, alembic.ini's file_template); the template's
branch in migrations/template is never their parent, and its tables are
never compared.
"""

from __future__ import annotations

import asyncio
import re
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


NUMBERED = re.compile(r"[0-9]{4}")
# 0001-0004 are the example's revisions, kept or removed (its removal
# recognises them by these ids): yours start at 0005.
LAST_EXAMPLE_NUMBER = 4
REVISION_LINE = re.compile(r'^revision(?:: str)? = "([^"]+)"', re.MULTILINE)


def next_service_id(script: ScriptDirectory) -> str:
    """The id of a new revision of the service's: the next four-digit number
    (0005, 0006...), as the example's are numbered (0001-0004) and the
    template's own (template_0001), instead of Alembic's random hex ids."""
    folder = service_versions(script).resolve()
    numbers = [LAST_EXAMPLE_NUMBER] + [
        int(revision.revision)
        for revision in script.walk_revisions()
        if revision.path is not None
        and Path(revision.path).resolve().parent == folder
        and NUMBERED.fullmatch(revision.revision)
    ]
    return f"{max(numbers) + 1:04d}"


def refuse_a_number_used_twice() -> None:
    """Two pull requests that each added 0005: Alembic would only warn, keep
    one of the two files and lose the other's migration. Stop instead, for
    every command (`migrate` and the start-up's too), naming both files."""
    folder = service_versions(ScriptDirectory.from_config(config))
    files: dict[str, list[str]] = {}
    for path in sorted(folder.glob("*.py")):
        if found := REVISION_LINE.search(path.read_text(encoding="utf-8")):
            files.setdefault(found.group(1), []).append(path.name)
    twice = {revision: names for revision, names in files.items() if len(names) > 1}
    if twice:
        revision, names = next(iter(twice.items()))
        raise SystemExit(
            f"revision {revision} is in {' and '.join(names)}: renumber the one"
            " merged later (its file name, its `revision`, and the"
            " `down_revision` of any revision after it)"
        )


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
        # Numbered unless the command chose an id (--rev-id, or from code)
        # or a folder other than the service's (--version-path).
        ours = (
            Path(directive.version_path).resolve() == service_versions(script).resolve()
        )
        if ours and config.cmd_opts is not None and not config.cmd_opts.rev_id:
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


refuse_a_number_used_twice()
if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
