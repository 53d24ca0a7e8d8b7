"""One log line when a message starts, and one when it ends; in between, the
task's own log lines and outgoing calls carry the request id that sent it."""

from __future__ import annotations

import time
from contextvars import Token
from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.middleware import Middleware
from loguru import logger

from app.logging import REQUEST_FIELDS


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


class MessageLogging(Middleware):
    """One line when a message starts, and one when it ends (with duration)."""

    def __init__(self) -> None:
        self._started: dict[str, float] = {}
        self._fields: dict[str, Token[dict[str, str] | None]] = {}

    def before_process_message(
        self, broker: dramatiq.Broker, message: MessageProxy
    ) -> None:
        self._started[message.message_id] = time.perf_counter()
        request_id = message.options.get("request_id")
        if request_id:
            # Set in the worker thread that runs the task: an async task's
            # coroutine starts in a copy of this context (Dramatiq's
            # run_coroutine_threadsafe), so its lines carry the id too.
            self._fields[message.message_id] = REQUEST_FIELDS.set(
                {"request_id": request_id}
            )
        logger.bind(**message_fields(message)).info("task started")

    def _reset_fields(self, message: MessageProxy) -> None:
        token = self._fields.pop(message.message_id, None)
        if token is not None:
            REQUEST_FIELDS.reset(token)

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        self._reset_fields(message)
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
        self._reset_fields(message)
        self._started.pop(message.message_id, None)
        logger.bind(**message_fields(message)).warning("task skipped (too old)")
