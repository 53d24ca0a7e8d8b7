"""One log line when a message starts, and one when it ends."""

from __future__ import annotations

import time
from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.middleware import Middleware
from loguru import logger


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
