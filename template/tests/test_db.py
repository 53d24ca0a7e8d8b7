"""app/db.py itself, as the service runs it: the engine, its sessions, its
pool and its timeouts, on SQLite and (with DATABASE_DSN) PostgreSQL. The
other database tests run on the fixtures' own engine (tests/conftest.py)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy.exc
from sqlalchemy import text

from app import db
from app.settings import DatabaseSettings
from tests.fixtures.settings import make_settings

pytestmark = pytest.mark.anyio


def database_settings(url: str, **values: Any) -> DatabaseSettings:
    return make_settings(url, database={"dsn": url, **values}).database


async def test_sessions_of_the_service_s_engine_write_and_read(
    database_url: str,
) -> None:
    engine = db.create_engine(database_settings(database_url), "db-test")
    sessions = db.create_sessionmaker(engine)
    try:
        await db.ping(engine)
        async with sessions() as session:
            connection = await session.connection()
            await connection.execute(text("CREATE TABLE db_adapter_check (n INTEGER)"))
            await connection.execute(text("INSERT INTO db_adapter_check VALUES (1)"))
            await session.commit()
        async with sessions() as session:
            connection = await session.connection()
            found = (
                await connection.execute(text("SELECT n FROM db_adapter_check"))
            ).scalar()
            await connection.execute(text("DROP TABLE db_adapter_check"))
            await session.commit()
    finally:
        await engine.dispose()

    assert found == 1


async def test_a_full_pool_waits_the_pool_timeout_then_fails_as_unreachable(
    database_url: str,
) -> None:
    """DATABASE_POOL_SIZE, DATABASE_MAX_OVERFLOW and DATABASE_POOL_TIMEOUT:
    a request that finds every connection taken fails after the pool's
    timeout (answered 503), not after the caller's patience."""
    settings = database_settings(
        database_url, pool_size=1, max_overflow=0, pool_timeout=0.2
    )
    engine = db.create_engine(settings, "pool-test")
    outer = asyncio.timeout(10)  # only if the pool's own bound did not hold
    try:
        async with engine.connect():
            started = time.monotonic()
            with pytest.raises(sqlalchemy.exc.TimeoutError) as raised:
                async with outer, engine.connect():
                    pass
            waited = time.monotonic() - started
    finally:
        await engine.dispose()

    assert not outer.expired()
    assert waited >= 0.2  # it waited for a connection: the setting, not 0
    assert db.is_unreachable(raised.value)
    assert engine.pool.size() == 1  # type: ignore[attr-defined]


async def test_sqlite_waits_the_statement_timeout_for_a_locked_file(
    tmp_path: Path,
) -> None:
    """On SQLite, DATABASE_STATEMENT_TIMEOUT is how long a writer waits for
    another's lock before it fails."""
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE counted (n INTEGER)")
    holder.execute("BEGIN IMMEDIATE")  # another process's write, not committed
    url = f"sqlite+aiosqlite:///{path}"
    engine = db.create_engine(database_settings(url, statement_timeout=0.2), "lock")
    # Below sqlite3's own 5 s and the setting's 10 s default: the value is used.
    outer = asyncio.timeout(2)
    started = time.monotonic()
    try:
        with pytest.raises(sqlalchemy.exc.OperationalError, match="locked"):
            async with outer, engine.begin() as connection:
                await connection.execute(text("INSERT INTO counted VALUES (1)"))
        waited = time.monotonic() - started
    finally:
        await engine.dispose()
        holder.rollback()
        holder.close()

    assert not outer.expired()
    assert waited >= 0.2  # it waited for the lock: the setting, not 0
