"""Build the Dramatiq broker from settings and declare the registered tasks."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import (
    AgeLimit,
    AsyncIO,
    Callbacks,
    CurrentMessage,
    Middleware,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)
from loguru import logger
from opentelemetry import context as otel_context

from app.worker import registry
from app.worker.loop import event_loop
from app.worker.middleware.message_log import MessageLogging, message_fields
from app.worker.middleware.tracing import TaskTracing
from app.worker.settings import WorkerSettings


def create_broker(
    settings: WorkerSettings,
    extra_middleware: Sequence[Middleware] = (),
    tracing: TaskTracing | None = None,
) -> dramatiq.Broker:
    """A broker for these settings, with every registered task declared
    (`registry.load` imports the task modules first)."""
    middleware: list[Middleware] = [
        AgeLimit(),
        TimeLimit(time_limit=settings.time_limit_ms),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        Retries(
            max_retries=settings.max_retries,
            min_backoff=settings.min_backoff_ms,
            max_backoff=settings.max_backoff_ms,
        ),
        CurrentMessage(),
        AsyncIO(),
        # Before MessageLogging: its lines carry the task span's ids.
        tracing or TaskTracing(),
        MessageLogging(),
        # After AsyncIO: Dramatiq runs "after" hooks in reverse order, so their
        # after_worker_shutdown still has the event loop.
        *extra_middleware,
    ]
    broker: dramatiq.Broker
    dsn = settings.broker_dsn
    if dsn is None:
        broker = StubBroker(middleware=middleware)
    elif dsn.startswith(("redis://", "rediss://")):
        from dramatiq.brokers.redis import RedisBroker

        broker = RedisBroker(  # type: ignore[no-untyped-call]
            url=dsn,
            namespace=settings.namespace,
            middleware=middleware,
            heartbeat_timeout=settings.redis_heartbeat_timeout_ms,
            maintenance_chance=settings.redis_maintenance_chance,
        )
    else:
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        # Publisher confirms: send() returns once RabbitMQ has the message.
        broker = RabbitmqBroker(url=dsn, confirm_delivery=True, middleware=middleware)
    for spec in registry.TASKS.values():
        options = {"queue_name": settings.queue, **spec.options}
        declare = dramatiq.actor(actor_name=spec.name, broker=broker, **options)
        declare(_run_on_event_loop(spec.function))
    return broker


def _run_on_event_loop(function: registry.TaskFunction) -> Callable[..., Any]:
    """Run an async task on the worker's event loop with its log context.

    Dramatiq calls actors on worker threads and runs coroutines on a separate
    event-loop thread, each in a copy of its worker thread's context; the
    message's log fields and trace context are bound here, around the
    coroutine, so that they are the message's whatever the middleware set.
    """

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        fields = message_fields(CurrentMessage.get_current_message())
        trace_context = otel_context.get_current()

        async def with_context() -> Any:
            token = otel_context.attach(trace_context)
            try:
                with logger.contextualize(**fields):
                    return await function(*args, **kwargs)
            finally:
                otel_context.detach(token)

        return event_loop().run_coroutine(with_context())

    return run
