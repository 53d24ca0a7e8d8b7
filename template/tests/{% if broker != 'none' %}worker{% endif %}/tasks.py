"""Tasks and a route of the worker tests' own, plugged in as an owner's would
be (`JOBS_PLUGIN`): the template's worker tests never use the example, which
owners delete.

`POST /api/v1/test-jobs/{key}` commits a request row, then enqueues
`count_once(key)`, as a domain route does; `GET` reads the counter.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Path
from loguru import logger
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.clients import create_http_client
from app.db import SessionDep
from app.errors import NotFound
from app.plugin import Plugin, Resources
from app.settings import HttpSettings, Settings
from app.worker import JobsDep, exactly_once, task

COUNTERS_TABLE = (
    "CREATE TABLE IF NOT EXISTS test_counters (key VARCHAR(200) PRIMARY KEY,"
    " hits INTEGER NOT NULL, requested_at FLOAT, done_at FLOAT)"
)
# Epoch seconds: the benchmark's latency is done_at - requested_at.
COUNT = text(
    "INSERT INTO test_counters (key, hits, done_at) VALUES (:key, 1, :now) "
    "ON CONFLICT (key) DO UPDATE SET hits = test_counters.hits + 1, done_at = :now"
)
REQUEST = text(
    "INSERT INTO test_counters (key, hits, requested_at) VALUES (:key, 0, :now) "
    "ON CONFLICT (key) DO UPDATE SET requested_at = :now"
)


@task(max_retries=0)
async def count_once(
    key: str, sleep_before: float = 0.0, sleep_after: float = 0.0
) -> None:
    """Add one hit to `key`, once per key; sleeps let tests interrupt it."""
    await asyncio.sleep(sleep_before)
    async with exactly_once(f"count:{key}") as session:
        if session is not None:
            connection = await session.connection()
            await connection.execute(COUNT, {"key": key, "now": time.time()})
    await asyncio.sleep(sleep_after)


@task(max_retries=0)
async def report_to(url: str) -> None:
    """Write a line and call `url`, as a task that notifies another service."""
    logger.info("reporting to {url}", url=url)
    async with create_http_client(HttpSettings()) as outgoing:
        await outgoing.get(url)


@task()
async def always_fails(reason: str) -> None:
    """Fails every time: ends in the dead-letter queue after its retries."""
    raise RuntimeError(reason)


class Queued(BaseModel):
    message_id: str


class Counter(BaseModel):
    key: str
    hits: int


Key = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,100}$")]
router = APIRouter(prefix="/test-jobs", tags=["test-jobs"])


@router.post("/{key}", status_code=202, response_model=Queued)
async def enqueue_count(key: Key, session: SessionDep, jobs: JobsDep) -> Queued:
    """Record the request and commit, then enqueue the task."""
    connection = await session.connection()
    await connection.execute(REQUEST, {"key": key, "now": time.time()})
    await session.commit()
    return Queued(message_id=await jobs.send(count_once, key))


@router.get("/{key}", response_model=Counter)
async def read_count(key: Key, session: SessionDep) -> Counter:
    connection = await session.connection()
    row = (
        await connection.execute(
            text("SELECT hits FROM test_counters WHERE key = :key"), {"key": key}
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"no counter {key!r}")
    return Counter(key=key, hits=row.hits)


@asynccontextmanager
async def counters_table(settings: Settings) -> AsyncIterator[Resources]:
    """Create the counters table on the app's database (tests only)."""
    engine = create_async_engine(settings.database.url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(COUNTERS_TABLE))
    finally:
        await engine.dispose()
    yield Resources()


JOBS_PLUGIN = Plugin(
    name="test-jobs",
    api_routers=[router],
    lifespan=counters_table,
    task_modules=["tests.worker.tasks"],
)
