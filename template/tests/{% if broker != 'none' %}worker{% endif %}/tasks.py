"""Tasks used only by the worker tests (loaded through WORKER_MODULES)."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from app.worker.idempotency import once
from app.worker.middleware import sessionmaker
from app.worker.registry import task

COUNTERS_TABLE = "CREATE TABLE IF NOT EXISTS test_counters (key TEXT PRIMARY KEY, hits INTEGER NOT NULL)"


@task(max_retries=0)
async def count_once(
    key: str, sleep_before: float = 0.0, sleep_after: float = 0.0
) -> None:
    """Add one hit to `key`, once per key; sleeps let tests interrupt it."""
    await asyncio.sleep(sleep_before)
    async with sessionmaker()() as session, once(session, f"count:{key}") as first:
        if first:
            connection = await session.connection()
            await connection.execute(
                text(
                    "INSERT INTO test_counters (key, hits) VALUES (:key, 1) "
                    "ON CONFLICT (key) DO UPDATE SET hits = test_counters.hits + 1"
                ),
                {"key": key},
            )
    await asyncio.sleep(sleep_after)


@task()
async def always_fails(reason: str) -> None:
    """Fails every time: ends in the dead-letter queue after its retries."""
    raise RuntimeError(reason)
