"""The worker inside the API process (the embedded default), and the broker's
place in the app's lifespan."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import dramatiq
from loguru import logger
from prometheus_client import REGISTRY
from prometheus_client.metrics_core import Metric

from app.health import Check
from app.plugin import Plugin, Resources
from app.settings import Settings
from app.worker.broker import create_broker
from app.worker.jobs import broker_outage, ping
from app.worker.metrics import TaskMetrics
from app.worker.middleware import WorkerDatabase


class InProcessMetrics(TaskMetrics):
    """Dramatiq's metrics (`dramatiq_messages_total`, ...) for the in-process
    worker, served by the API's /metrics.

    Dramatiq's middleware keeps them in a registry of its own and serves them
    from a forked process on WORKER_METRICS_PORT, which suits `python -m
    app.worker run`, not a worker inside the API.
    """

    @property
    def forks(self) -> list[Any]:
        return []

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        # Dramatiq's version also switches the process to multiprocess
        # metrics through the environment; the API decides that itself.
        saved = {
            name: os.environ.get(name)
            for name in ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir")
        }
        super().after_process_boot(broker)  # type: ignore[no-untyped-call]
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        IN_PROCESS_WORKERS.running.append(self)

    def after_worker_shutdown(
        self, broker: dramatiq.Broker, worker: dramatiq.Worker
    ) -> None:
        if self in IN_PROCESS_WORKERS.running:
            IN_PROCESS_WORKERS.running.remove(self)


class _InProcessWorkers:
    """The metrics of the in-process workers now running."""

    def __init__(self) -> None:
        self.running: list[InProcessMetrics] = []

    def collect(self) -> Iterator[Metric]:
        for middleware in list(self.running):
            for name in (
                "total_messages",
                "total_errored_messages",
                "total_retried_messages",
                "total_rejected_messages",
                "inprogress_messages",
                "message_durations",
            ):
                yield from getattr(middleware, name).collect()


IN_PROCESS_WORKERS = _InProcessWorkers()
REGISTRY.register(IN_PROCESS_WORKERS)


@asynccontextmanager
async def broker_lifespan(settings: Settings) -> AsyncIterator[Resources]:
    """Open the broker; on the stub broker, also run a worker in this process."""
    worker_settings = settings.worker
    in_process = worker_settings.uses_stub
    extra = [WorkerDatabase(settings), InProcessMetrics()] if in_process else []
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
        yield Resources(
            values={"broker": broker, "outage_of_broker": broker_outage()},
            checks=[check],
        )
    finally:
        if worker is not None:
            await anyio.to_thread.run_sync(
                lambda: worker.stop(
                    timeout=int(worker_settings.shutdown_timeout * 1000)
                )
            )
        broker.close()


worker_plugin = Plugin(name="worker", lifespan=broker_lifespan)
