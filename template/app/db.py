"""The async database engine and sessions (SQLModel on SQLAlchemy)."""

from __future__ import annotations

import traceback
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy.exc
from fastapi import Depends, Request
from sqlalchemy import URL, event, make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from app import outages
from app.settings import DatabaseSettings
from app.state import state_of


def create_engine(
    settings: DatabaseSettings, application_name: str, *, hide_parameters: bool = True
) -> AsyncEngine:
    """An engine with the pool and timeouts from settings.

    `hide_parameters` keeps the values bound to a statement (user data) out
    of its errors, and so out of the logs; development shows them.
    """
    url = make_url(settings.url)
    # DATABASE_ECHO works through the sqlalchemy.engine log level (see
    # app.logging), not `echo=`, which would add a second, non-JSON handler.
    options: dict[str, Any] = {
        "pool_pre_ping": settings.pool_pre_ping,
        "hide_parameters": hide_parameters,
    }
    sqlite = url.get_backend_name() == "sqlite"
    # SQLite in memory has a pool of one connection, without these sizes.
    if not sqlite or sqlite_file(url) is not None:
        options |= {
            "pool_size": settings.pool_size,
            "max_overflow": settings.max_overflow,
            "pool_timeout": settings.pool_timeout,
        }
    if sqlite:
        # sqlite3's timeout is how long a writer waits for the file lock.
        options["connect_args"] = {"timeout": settings.statement_timeout}
    else:
        options["connect_args"] = {
            "timeout": settings.connect_timeout,
            "command_timeout": settings.statement_timeout,
            "server_settings": {
                "statement_timeout": str(int(settings.statement_timeout * 1000)),
                "application_name": application_name,
            },
        }
    return create_async_engine(url, **options)


def sqlite_file(url: URL) -> Path | None:
    """The file a SQLite URL names, its folder made if missing (var/ on the
    embedded default); None for SQLite in memory or another database."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    path = Path(url.database)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


# SQLSTATE classes and codes of a database that cannot be reached: connection
# exceptions, a server shutting down or starting, too many connections.
UNREACHABLE_STATES = ("08", "57P01", "57P02", "57P03", "53300")
# asyncpg's error for a connection that broke under a query (no SQLSTATE);
# its other client errors (misuse, too many arguments) are faults.
BROKEN_CONNECTION = "ConnectionDoesNotExistError"
DRIVERS = ("sqlalchemy", "asyncpg", "aiosqlite")


def is_unreachable(error: BaseException) -> bool:
    """Whether `error` says the database cannot be reached now (a refused or
    dropped connection, a server shutting down, a full pool), not that a
    statement is wrong: the first answers 503, the second stays a 500."""
    if isinstance(error, OSError) and not _raised_by_driver(error):
        return False  # a socket of the route's own, not the database's
    seen: BaseException | None = error
    for _ in range(4):  # the error, SQLAlchemy's `orig`, the driver's cause
        if seen is None:
            return False
        if isinstance(seen, OSError | sqlalchemy.exc.TimeoutError):
            return True
        if isinstance(seen, sqlalchemy.exc.DBAPIError) and seen.connection_invalidated:
            return True
        state = getattr(seen, "sqlstate", None) or getattr(seen, "pgcode", None)
        if isinstance(state, str) and state.startswith(UNREACHABLE_STATES):
            return True
        kind = type(seen)
        if kind.__module__.startswith("asyncpg") and kind.__name__ == BROKEN_CONNECTION:
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False


def _raised_by_driver(error: BaseException) -> bool:
    """Whether the database's libraries raised `error` (a connect refused)."""
    frames = traceback.walk_tb(error.__traceback__)
    return any(
        str(frame.f_globals.get("__name__", "")).startswith(DRIVERS)
        for frame, _ in frames
    )


class Outage(outages.Outage):
    """Whether the database is down: said once when requests start failing
    and once when a connection opens again, not once per request."""

    detailed = False

    def __init__(self) -> None:
        super().__init__("database", "requests that need it answer 503")

    def failed(self, error: BaseException) -> None:
        if isinstance(error, sqlalchemy.exc.TimeoutError):
            return  # a full pool: the database answers, this process is busy
        super().failed(error)

    def watch(self, engine: AsyncEngine) -> None:
        """Say the database is back when the pool opens a connection."""
        event.listen(engine.sync_engine, "connect", lambda *_: self.recovered())


async def ping(engine: AsyncEngine) -> None:
    """Run a trivial query; raises if the database cannot answer."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request, from the sessionmaker the lifespan opened."""
    sessionmaker = state_of(request)["sessionmaker"]
    async with sessionmaker() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]
