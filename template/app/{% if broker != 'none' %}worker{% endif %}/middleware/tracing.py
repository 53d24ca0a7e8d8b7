"""A trace span per message, continuing the trace of the request that sent it."""

from __future__ import annotations

from contextvars import Token
from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.middleware import Middleware
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from app import telemetry


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
