"""The async database engine and sessions (SQLModel on SQLAlchemy)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from app.settings import DatabaseSettings
from app.state import state_of


def create_engine(settings: DatabaseSettings, application_name: str) -> AsyncEngine:
    """An engine with the pool and timeouts from settings."""
    url = make_url(settings.url)
    # DATABASE_ECHO works through the sqlalchemy.engine log level (see
    # app.logging), not `echo=`, which would add a second, non-JSON handler.
    options: dict[str, Any] = {"pool_pre_ping": settings.pool_pre_ping}
    in_memory = url.get_backend_name() == "sqlite" and url.database in (
        None,
        "",
        ":memory:",
    )
    if not in_memory:
        options |= {
            "pool_size": settings.pool_size,
            "max_overflow": settings.max_overflow,
            "pool_timeout": settings.pool_timeout,
        }
    if url.get_backend_name() == "sqlite":
        if url.database and not in_memory:
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
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


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


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
