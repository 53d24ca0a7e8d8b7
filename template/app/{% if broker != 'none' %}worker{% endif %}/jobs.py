"""Enqueueing from the API: `JobsDep` sends registered tasks to the broker."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
import dramatiq
from fastapi import Depends, Request

from app import telemetry
from app.errors import (
    RETRY_AFTER_SECONDS,
    ServiceUnavailable,
    request_id_of,
    retry_after,
)
from app.outages import Outage
from app.worker.registry import TaskFunction, task_name


class Jobs:
    """Sends tasks; a broker that cannot take a message is a 503, not a 500."""

    def __init__(
        self,
        broker: dramatiq.Broker,
        request_id: str | None = None,
        outage: Outage | None = None,
    ) -> None:
        self.broker = broker
        self.request_id = request_id
        # Said once in the log per outage, not once per failed send.
        self.outage = outage or broker_outage()
        # A publisher confirm (RabbitMQ) waits for the server: off the event
        # loop. A Redis push (or the stub's) is a short call: in place, which
        # keeps enqueueing close to bare Dramatiq's rate.
        self._offload = bool(getattr(broker, "confirm_delivery", False))

    async def send(self, task: TaskFunction, *args: Any, **kwargs: Any) -> str:
        """Send a task; returns the message id. Call it after your commit."""
        actor = self.broker.get_actor(task_name(task))
        options: dict[str, Any] = {"request_id": self.request_id}
        # The task's span continues the request's trace (app.worker.middleware).
        if trace_context := telemetry.inject():
            options["trace_context"] = trace_context

        def send() -> dramatiq.Message[Any]:
            return actor.send_with_options(args=args, kwargs=kwargs, **options)

        try:
            message = await anyio.to_thread.run_sync(send) if self._offload else send()
        except Exception as error:  # redis, pika and dramatiq errors alike
            self.outage.failed(error)
            raise ServiceUnavailable(
                "the task queue is unavailable; try again later",
                headers=retry_after(RETRY_AFTER_SECONDS),
            ) from error
        self.outage.recovered()
        return str(message.message_id)


def broker_outage() -> Outage:
    return Outage("task queue", "requests that send tasks answer 503")


def get_jobs(request: Request) -> Jobs:
    return Jobs(
        request.state.broker, request_id_of(request), request.state.outage_of_broker
    )


JobsDep = Annotated[Jobs, Depends(get_jobs)]


def ping(broker: dramatiq.Broker) -> None:
    """Raise unless the broker answers (used by /ready)."""
    client = getattr(broker, "client", None)
    if client is not None:  # Redis
        client.ping()
        return
    connection = getattr(broker, "connection", None)
    if connection is not None:  # RabbitMQ: opening a channel needs the server
        connection.channel().close()
