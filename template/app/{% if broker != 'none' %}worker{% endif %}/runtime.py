"""The worker inside the API process (the embedded default), and the broker's
place in the app's lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import dramatiq
from loguru import logger

from app.health import Check
from app.settings import Settings
from app.worker.broker import create_broker
from app.worker.jobs import ping
from app.worker.middleware import WorkerDatabase


@asynccontextmanager
async def broker_lifespan(settings: Settings) -> AsyncIterator[dict[str, Any]]:
    """Open the broker; on the stub broker, also run a worker in this process."""
    worker_settings = settings.worker
    in_process = worker_settings.uses_stub
    extra = [WorkerDatabase(settings)] if in_process else []
    broker = create_broker(worker_settings, extra_middleware=extra)
    worker: dramatiq.Worker | None = None
    if in_process:
        broker.emit_after("process_boot")
        worker = dramatiq.Worker(
            broker, worker_threads=worker_settings.threads, worker_timeout=100
        )
        worker.start()
        logger.info("in-process worker started (stub broker, development only)")
    check = Check("broker", lambda: anyio.to_thread.run_sync(ping, broker))
    try:
        yield {"broker": broker, "checks": [check]}
    finally:
        if worker is not None:
            await anyio.to_thread.run_sync(
                lambda: worker.stop(
                    timeout=int(worker_settings.shutdown_timeout * 1000)
                )
            )
        broker.close()
