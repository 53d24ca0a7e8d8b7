"""Migrations: they run both ways, they match the models exactly, and what
Alembic writes for the service (revision, --autogenerate, merge) lands in
migrations/versions after the service's own head and passes its gates."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect
from sqlalchemy.ext.asyncio import create_async_engine

from app import migrations
from app.migrations import TEMPLATE_TABLES
from app.models import metadata
from tests.fixtures.databases import postgres_server_url, temporary_postgres_database

pytestmark = pytest.mark.anyio

MIGRATION_BACKENDS = [pytest.param("sqlite", id="sqlite")]
if postgres_server_url():
    MIGRATION_BACKENDS.append(
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres)
    )


@pytest.fixture(params=MIGRATION_BACKENDS)
async def empty_database(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'migrations.db'}"
        return
    server_url = postgres_server_url()
    assert server_url is not None
    async with temporary_postgres_database(server_url) as url:
        yield url


async def tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    async with engine.connect() as connection:
        names = await connection.run_sync(
            lambda sync: set(inspect(sync).get_table_names())
        )
    await engine.dispose()
    return names - {"alembic_version"}


async def test_upgrade_downgrade_upgrade(empty_database: str) -> None:
    await asyncio.to_thread(migrations.upgrade, empty_database)
    assert await tables(empty_database) == set(metadata.tables) | TEMPLATE_TABLES

    await asyncio.to_thread(migrations.downgrade, empty_database, "base")
    assert await tables(empty_database) == set()

    await asyncio.to_thread(migrations.upgrade, empty_database)
    assert await tables(empty_database) == set(metadata.tables) | TEMPLATE_TABLES


async def test_models_and_migrations_do_not_drift(empty_database: str) -> None:
    await asyncio.to_thread(migrations.upgrade, empty_database)

    def differences(connection: Connection) -> list[object]:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "compare_server_default": True,
                # The template's tables are the template branch's to change.
                "include_object": lambda _, name, kind, *__: not (
                    kind == "table" and name in TEMPLATE_TABLES
                ),
            },
        )
        return list(compare_metadata(context, metadata))

    engine = create_async_engine(empty_database)
    async with engine.connect() as connection:
        diff = await connection.run_sync(differences)
    await engine.dispose()

    assert diff == []


async def test_upgrade_creates_the_folder_of_a_new_sqlite_file(tmp_path: Path) -> None:
    database = tmp_path / "var" / "fresh.db"  # var/ does not exist yet
    url = f"sqlite+aiosqlite:///{database}"

    await asyncio.to_thread(migrations.upgrade, url)

    assert database.is_file()
    assert await tables(url) == set(metadata.tables) | TEMPLATE_TABLES


def test_processes_starting_together_migrate_a_sqlite_file_once(
    tmp_path: Path,
) -> None:
    """SERVER_WORKERS=2 on the embedded default: each process migrates at
    start-up; the second waits for the first, then finds nothing to do."""
    for attempt in range(3):
        url = f"sqlite+aiosqlite:///{tmp_path / f'together-{attempt}.db'}"
        script = (
            "import sys; from app import migrations; " "migrations.upgrade(sys.argv[1])"
        )
        starts = [
            subprocess.Popen(  # noqa: S603 - this interpreter, our own code
                [sys.executable, "-c", script, url],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(2)
        ]
        outputs = [process.communicate(timeout=120)[0] for process in starts]

        assert [process.returncode for process in starts] == [0, 0], outputs
