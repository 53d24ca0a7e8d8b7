"""Dramatiq middleware: a trace span and log lines per message, the worker's
database, its heartbeat file, and one stop per signal."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from contextvars import Token
from pathlib import Path
from types import FrameType
from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.middleware import Middleware
from loguru import logger
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from app import db, telemetry
from app.settings import Settings
from app.worker.loop import event_loop


def message_fields(
    message: dramatiq.Message[Any] | MessageProxy | None,
) -> dict[str, Any]:
    """The log fields of a message: id, actor, attempt, enqueuing request."""
    if message is None:
        return {}
    return {
        "message_id": message.message_id,
        "actor": message.actor_name,
        "attempt": message.options.get("retries", 0) + 1,
        "request_id": message.options.get("request_id") or "-",
    }


class TaskTracing(Middleware):
    """A consumer span per message, continuing the trace of the request that
    enqueued it; `tracing` (the worker's own provider) is flushed at shutdown.
    """

    def __init__(self, tracing: telemetry.Tracing | None = None) -> None:
        self.tracing = tracing
        self._open: dict[str, tuple[trace.Span, Token[otel_context.Context]]] = {}

    def before_worker_boot(
        self, broker: dramatiq.Broker, worker: dramatiq.Worker
    ) -> None:
        # Before WorkerDatabase's: its engine is instrumented when it opens.
        if self.tracing is not None:
            self.tracing.start()

    def before_process_message(
        self, broker: dramatiq.Broker, message: MessageProxy
    ) -> None:
        parent = telemetry.extract(message.options.get("trace_context"))
        span = telemetry.tracer(__name__).start_span(
            f"task {message.actor_name}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "dramatiq",
                "messaging.destination.name": message.queue_name,
                "messaging.message.id": message.message_id,
                "messaging.operation.type": "process",
            },
        )
        if not span.get_span_context().is_valid:
            # Tracing is off here: keep the producer's ids for the log lines.
            span = trace.get_current_span(parent)
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        self._open[message.message_id] = (span, token)

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        opened = self._open.pop(message.message_id, None)
        if opened is None:
            return
        span, token = opened
        if exception is not None:
            telemetry.record_exception(exception, span)
        span.end()
        otel_context.detach(token)

    def after_skip_message(
        self, broker: dramatiq.Broker, message: MessageProxy
    ) -> None:
        self.after_process_message(broker, message)

    def after_worker_shutdown(
        self, broker: dramatiq.Broker, worker: dramatiq.Worker
    ) -> None:
        if self.tracing is not None:
            self.tracing.shutdown()


class MessageLogging(Middleware):
    """One line when a message starts, and one when it ends (with duration)."""

    def __init__(self) -> None:
        self._started: dict[str, float] = {}

    def before_process_message(
        self, broker: dramatiq.Broker, message: MessageProxy
    ) -> None:
        self._started[message.message_id] = time.perf_counter()
        logger.bind(**message_fields(message)).info("task started")

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        started = self._started.pop(message.message_id, time.perf_counter())
        fields = message_fields(message)
        fields["duration_ms"] = round((time.perf_counter() - started) * 1000, 2)
        if exception is None:
            logger.bind(**fields).info("task done")
        else:
            logger.bind(**fields).opt(exception=exception).warning(
                "task failed: {error}", error=repr(exception)
            )

    def after_skip_message(
        self, broker: dramatiq.Broker, message: MessageProxy
    ) -> None:
        self._started.pop(message.message_id, None)
        logger.bind(**message_fields(message)).warning("task skipped (too old)")


_sessionmaker: async_sessionmaker[AsyncSession] | None = None


def sessionmaker() -> async_sessionmaker[AsyncSession]:
    """The worker's sessionmaker (tasks use it for their database work)."""
    if _sessionmaker is None:
        raise RuntimeError("the worker's database is not open: is the worker running?")
    return _sessionmaker


class WorkerDatabase(Middleware):
    """Open the database on the worker's event loop at boot; close at shutdown."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine: AsyncEngine | None = None

    def before_worker_boot(
        self, broker: dramatiq.Broker, worker: dramatiq.Worker
    ) -> None:
        # Before the consumers start: a message may arrive at once.
        global _sessionmaker
        self.engine = db.create_engine(
            self.settings.database,
            f"{self.settings.service.name}-worker",
            hide_parameters=not self.settings.is_development,
        )
        telemetry.instrument_engine(self.engine)
        _sessionmaker = db.create_sessionmaker(self.engine)

    def after_worker_shutdown(
        self, broker: dramatiq.Broker, worker: dramatiq.Worker
    ) -> None:
        # Once running tasks have finished; the event loop is still up (see
        # create_broker for the order).
        global _sessionmaker
        if self.engine is not None:
            event_loop().run_coroutine(self.engine.dispose())
        _sessionmaker = None


class Heartbeat(Middleware):
    """Touch a file while the worker runs: `python -m app.worker health` reads it."""

    def __init__(self, path: str, interval: float) -> None:
        self.path = Path(path)
        self.interval = interval
        self._stop = threading.Event()

    def after_worker_boot(
        self, broker: dramatiq.Broker, worker: dramatiq.Worker
    ) -> None:
        self._stop.clear()
        threading.Thread(target=self._beat, name="heartbeat", daemon=True).start()

    def before_worker_shutdown(
        self, broker: dramatiq.Broker, worker: dramatiq.Worker
    ) -> None:
        self._stop.set()

    def _beat(self) -> None:
        while not self._stop.is_set():
            self.path.write_text(f"{time.time():.3f}\n")
            self._stop.wait(self.interval)


class OneStopPerSignal(Middleware):
    """A worker process stops gracefully once per signal, however it is sent.

    Dramatiq's main process forwards SIGTERM (and SIGHUP) to each worker
    process, which takes a second one as "kill now". Sent to the whole process
    group or control group (systemd's default KillMode, `kill -- -PGID`), the
    signal reaches every worker process twice within milliseconds: Dramatiq would
    skip the graceful stop, keep taking messages, and never exit, as the
    event loop thread of async tasks holds the process open. Here a repeat
    within `window` seconds is the same stop; a later one kills the process
    at once, and the broker redelivers its unfinished messages.
    """

    def __init__(self, window: float = 2.0) -> None:
        self.window = window
        self._first: float | None = None

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        # Dramatiq installs its handlers before the broker boots.
        if threading.current_thread() is not threading.main_thread():
            return
        for name in ("SIGTERM", "SIGHUP"):  # SIGHUP: not on Windows
            number = getattr(signal, name, None)
            if number is None:
                continue
            previous = signal.getsignal(number)
            if callable(previous):
                signal.signal(number, self._once(previous))

    def _once(
        self, previous: Callable[[int, FrameType | None], Any]
    ) -> Callable[[int, FrameType | None], None]:
        def handler(number: int, frame: FrameType | None) -> None:
            now = time.monotonic()
            if self._first is None:
                self._first = now
                previous(number, frame)
            elif now - self._first >= self.window:
                try:
                    logger.warning(
                        "signalled again while stopping: killing the worker"
                        " process; the broker redelivers its unfinished messages"
                    )
                finally:  # loguru may refuse a call from inside its own
                    os._exit(1)

        return handler


def is_fresh(path: str, interval: float, now: float | None = None) -> bool:
    """Whether the heartbeat file was written within three intervals."""
    try:
        beat = float(Path(path).read_text().strip())
    except (OSError, ValueError):
        return False
    return (now or time.time()) - beat <= 3 * interval
