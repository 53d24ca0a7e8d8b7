"""Fixtures: an app per test on a database per session, each test inside a
transaction that is rolled back afterwards.

Every database test runs on SQLite; when DATABASE_DSN names a PostgreSQL
server, it also runs on a fresh database there (marker `postgres`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from app.db import get_session
from app.models import metadata
from app.settings import Settings
from tests.fixtures.client import client_for
from tests.fixtures.databases import (
    enable_sqlite_savepoints,
    postgres_server_url,
    temporary_postgres_database,
)
from tests.fixtures.identity import (
    ALICE,
    IdentityProvider,
    bearer,
    shared_identity,
    token_for,
)
from tests.fixtures.probe import metadata as notes_metadata
from tests.fixtures.probe import notes_app
from tests.fixtures.settings import make_settings

BACKENDS = [pytest.param("sqlite", id="sqlite")]
if postgres_server_url():
    BACKENDS.append(
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres)
    )


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
async def postgres_url() -> AsyncIterator[str]:
    """A fresh database on the server DATABASE_DSN names, dropped afterwards."""
    server_url = postgres_server_url()
    if server_url is None:
        pytest.skip("DATABASE_DSN does not name a PostgreSQL server")
    async with temporary_postgres_database(server_url) as url:
        yield url


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> str:
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_url")
        return url
    path: Path = tmp_path_factory.mktemp("db") / "test.db"
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url)
    if engine.dialect.name == "sqlite":
        enable_sqlite_savepoints(engine)
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
        await connection.run_sync(notes_metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
async def session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session whose commits become savepoints of a rolled-back transaction."""
    async with engine.connect() as connection:
        transaction = await connection.begin()
        session = AsyncSession(
            bind=connection,
            join_transaction_mode="create_savepoint",
            expire_on_commit=False,
        )
        try:
            yield session
        finally:
            await session.close()
            await transaction.rollback()


@pytest.fixture(scope="session")
def identity() -> IdentityProvider:
    """The identity provider AUTH_MODE=oidc trusts in tests."""
    return shared_identity()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture(scope="module")
def module_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings on a SQLite database of the test module's own, migrated at
    start-up: for apps that commit, in tests not about the database."""
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'app.db'}"
    return make_settings(url, database={"dsn": url, "migrate_on_start": True})


@pytest.fixture
def app(settings: Settings, session: AsyncSession) -> Iterator[FastAPI]:
    app = notes_app(settings)

    async def test_session() -> AsyncIterator[AsyncSession]:
        yield session

    app.dependency_overrides[get_session] = test_session
    yield app
    app.dependency_overrides.clear()


ClientAs = Callable[[str | None], AbstractAsyncContextManager[AsyncClient]]


@pytest.fixture
def client_as(app: FastAPI, settings: Settings, identity: IdentityProvider) -> ClientAs:
    """A client calling as the given user (None: without a token)."""

    def client_as(user: str | None) -> AbstractAsyncContextManager[AsyncClient]:
        token = token_for(settings, identity, user) if user else ""
        return client_for(app, headers=bearer(token))

    return client_as


@pytest.fixture
async def client(client_as: ClientAs) -> AsyncIterator[AsyncClient]:
    """A client calling as ALICE (the anonymous user with AUTH_MODE=none)."""
    async with client_as(ALICE) as client:
        yield client


@pytest.fixture
async def anonymous(client_as: ClientAs) -> AsyncIterator[AsyncClient]:
    """A client sending no token."""
    async with client_as(None) as client:
        yield client
