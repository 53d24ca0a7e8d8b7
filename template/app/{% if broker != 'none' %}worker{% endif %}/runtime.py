"""The worker inside the API process (the embedded default), and the broker's
place in the app's lifespan."""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import dramatiq
from dramatiq.middleware import MiddlewareError
from loguru import logger
from prometheus_client import REGISTRY
from prometheus_client.metrics_core import Metric

from app.health import Check
from app.plugin import Plugin, Resources
from app.settings import Settings
from app.worker.broker import create_broker
from app.worker.jobs import broker_outage, ping
from app.worker.metrics import METRICS, MULTIPROCESS_VARIABLES, TaskMetrics
from app.worker.middleware.database import WorkerDatabase


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
        saved = {name: os.environ.get(name) for name in MULTIPROCESS_VARIABLES}
        super().after_process_boot(broker)  # type: ignore[no-untyped-call]
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        IN_PROCESS_WORKERS.running.append(self)
        # From the API's start, not the worker's (its first message): at 0.
        for name in broker.get_declared_actors():
            self.after_declare_actor(broker, broker.get_actor(name))

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
            for name in METRICS:
                yield from getattr(middleware, name).collect()


IN_PROCESS_WORKERS = _InProcessWorkers()
REGISTRY.register(IN_PROCESS_WORKERS)


class InProcessWorker:
    """The stub broker's worker, started by the first message enqueued.

    Most runs of the embedded default (a test's app, a `serve` that is only
    asked for pages) never enqueue a task: they neither start its threads nor
    wait, on the way out, for each of them to notice it should stop.
    """

    def __init__(self, broker: dramatiq.Broker, threads: int) -> None:
        self.broker = broker
        self.threads = threads
        self.worker: dramatiq.Worker | None = None
        self.closed = False
        self.lock = threading.Lock()

    def start(self) -> None:
        if self.worker is not None or self.closed:
            return
        with self.lock:
            if self.worker is None and not self.closed:
                worker = dramatiq.Worker(
                    self.broker, worker_threads=self.threads, worker_timeout=100
                )
                worker.start()
                self.worker = worker
                logger.info("in-process worker started (stub broker, development only)")

    def stop(self, timeout_ms: int) -> None:
        with self.lock:
            self.closed = True
            worker, self.worker = self.worker, None
        if worker is not None:
            worker.stop(timeout=timeout_ms)


class WorkerDidNotStart(MiddlewareError):
    """The in-process worker could not start: the message is not sent."""


class StartOnFirstMessage(dramatiq.Middleware):
    """Starts the in-process worker when a message is enqueued."""

    def __init__(self, worker: InProcessWorker) -> None:
        self.worker = worker

    def before_enqueue(
        self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int
    ) -> None:
        try:
            self.worker.start()
        except Exception as error:
            # Dramatiq logs and swallows other errors of a middleware: the
            # message would wait in the queue for a worker that never runs.
            # This one reaches the sender (app.worker.jobs: a 503).
            raise WorkerDidNotStart(f"in-process worker: {error}") from error


@asynccontextmanager
async def broker_lifespan(settings: Settings) -> AsyncIterator[Resources]:
    """Open the broker; on the stub broker, also run a worker in this process
    (from the first message on)."""
    worker_settings = settings.worker
    in_process = worker_settings.uses_stub
    metrics = InProcessMetrics() if in_process else None
    extra = [WorkerDatabase(settings), metrics] if metrics is not None else []
    broker = create_broker(worker_settings, extra_middleware=extra)
    worker: InProcessWorker | None = None
    if in_process:
        broker.emit_after("process_boot")
        worker = InProcessWorker(broker, worker_settings.threads)
        broker.add_middleware(StartOnFirstMessage(worker))
    check = Check("broker", lambda: anyio.to_thread.run_sync(ping, broker))
    try:
        yield Resources(
            values={"broker": broker, "outage_of_broker": broker_outage()},
            checks=[check],
        )
    finally:
        try:
            if worker is not None:
                timeout_ms = int(worker_settings.shutdown_timeout * 1000)
                await anyio.to_thread.run_sync(worker.stop, timeout_ms)
        finally:
            if metrics in IN_PROCESS_WORKERS.running:  # a worker never started
                IN_PROCESS_WORKERS.running.remove(metrics)
            broker.close()


worker_plugin = Plugin(name="worker", lifespan=broker_lifespan)
