"""Exactly-once effects on top of at-least-once delivery.

A task records its idempotency key in the same database transaction as its
effect. A redelivered or duplicate message finds the key and does nothing.
`exactly_once(key)` is the whole of it for a task; `once(session, key)` the
same on a session of your own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from sqlalchemy import DateTime
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from app.worker.sessions import task_session


def utcnow() -> datetime:
    return datetime.now(UTC)


class ProcessedMessage(SQLModel, table=True):
    __tablename__ = "processed_messages"

    key: str = Field(primary_key=True, max_length=200)
    processed_at: datetime = Field(
        default_factory=utcnow, sa_type=DateTime(timezone=True), nullable=False
    )


@asynccontextmanager
async def once(session: AsyncSession, key: str) -> AsyncIterator[bool]:
    """Yield True the first time `key` is seen, False afterwards.

    Do the effect inside the block; it commits together with the key, so a
    crash before the commit leaves neither, and one after leaves both.
    """
    if await session.get(ProcessedMessage, key) is not None:
        yield False
        return
    session.add(ProcessedMessage(key=key))
    yield True
    try:
        await session.commit()
    except IntegrityError:  # a concurrent delivery committed first
        await session.rollback()


@asynccontextmanager
async def exactly_once(key: str) -> AsyncIterator[AsyncSession | None]:
    """A task's session for an effect made once per `key`; None when a
    delivery before this one made it already.

        async with exactly_once(f"publish-item:{request_key}") as session:
            if session is None:
                return  # done before: a redelivered or duplicate message
            ...  # the effect; committed with the key when the block ends
    """
    async with task_session() as session, once(session, key) as first:
        yield session if first else None
