"""The worker's database sessions: where a task opens its session.

The worker opens its database on its own event loop when it boots
(`app.worker.middleware.database`) and points this module at it; the tests'
`tasks` fixture points it at the test's connection while it runs tasks. It is
process-wide because tasks are plain functions Dramatiq calls with their
message's arguments only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

_current: async_sessionmaker[AsyncSession] | None = None


def sessionmaker() -> async_sessionmaker[AsyncSession]:
    """The worker's sessionmaker (raises outside a running worker)."""
    if _current is None:
        raise RuntimeError("the worker's database is not open: is the worker running?")
    return _current


def task_session() -> AsyncSession:
    """A new session on the worker's database: `async with task_session() as s:`."""
    return sessionmaker()()


def install(
    factory: async_sessionmaker[AsyncSession] | None,
) -> async_sessionmaker[AsyncSession] | None:
    """Make `factory` the tasks' sessionmaker (None: closed); returns the last."""
    global _current
    previous, _current = _current, factory
    return previous


@contextmanager
def using(factory: async_sessionmaker[AsyncSession]) -> Iterator[None]:
    """Tasks open their sessions from `factory` inside the block."""
    previous = install(factory)
    try:
        yield
    finally:
        install(previous)
