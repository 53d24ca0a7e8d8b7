"""The dead-letter queue: messages whose retries ran out.

Dramatiq moves them to `<queue>.XQ`: a sorted set and a hash in Redis, a
queue in RabbitMQ, a list on the stub broker. List them, requeue them (with
their retry count reset) or purge them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dramatiq
from dramatiq.common import xq_name


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    actor: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    failures: int
    error: str | None

    @classmethod
    def of(cls, message: Any) -> DeadLetter:
        traceback = str(message.options.get("traceback", "")).strip().splitlines()
        return cls(
            message_id=message.message_id,
            actor=message.actor_name,
            args=tuple(message.args),
            kwargs=dict(message.kwargs),
            failures=int(message.options.get("retries", 0)),
            error=traceback[-1] if traceback else None,
        )


def _fresh(message: Any) -> dramatiq.Message[Any]:
    """The message as it was first sent: its retries start over."""
    options = {
        key: value
        for key, value in message.options.items()
        if key not in {"retries", "traceback", "eta", "redis_message_id"}
    }
    # Message.copy() would merge the options; this sets them.
    return dramatiq.Message(
        queue_name=message.queue_name,
        actor_name=message.actor_name,
        args=tuple(message.args),
        kwargs=dict(message.kwargs),
        options=options,
        message_id=message.message_id,
        message_timestamp=message.message_timestamp,
    )


def _decode(data: bytes) -> dramatiq.Message[Any]:
    return dramatiq.Message.decode(data)


def list_dead(broker: dramatiq.Broker, queue: str) -> list[DeadLetter]:
    return [DeadLetter.of(message) for message in _read(broker, queue, remove=False)]


def requeue(broker: dramatiq.Broker, queue: str) -> int:
    return len(_read(broker, queue, remove=True, then=broker.enqueue))


def purge(broker: dramatiq.Broker, queue: str) -> int:
    return len(_read(broker, queue, remove=True))


def _read(
    broker: dramatiq.Broker,
    queue: str,
    *,
    remove: bool,
    then: Any = None,
) -> list[Any]:
    """The dead messages of `queue`; with remove, take each off the DLQ after
    `then(fresh_message)` succeeded (so a failed requeue loses nothing)."""
    from dramatiq.brokers.stub import StubBroker

    messages: list[Any] = []
    if isinstance(broker, StubBroker):
        dead = broker.dead_letters_by_queue.get(queue, [])
        for proxy in list(dead):
            message: Any = proxy
            if then is not None:
                then(_fresh(message))
            if remove:
                dead.remove(proxy)
            messages.append(message)
        return messages
    client = getattr(broker, "client", None)
    if client is not None:  # Redis
        namespace = broker.namespace  # type: ignore[attr-defined]
        xq = f"{namespace}:{xq_name(queue)}"
        for message_id, data in sorted(client.hgetall(f"{xq}.msgs").items()):
            message = _decode(data)
            if then is not None:
                then(_fresh(message))
            if remove:
                client.zrem(xq, message_id)
                client.hdel(f"{xq}.msgs", message_id)
            messages.append(message)
        return messages
    channel = broker.channel  # type: ignore[attr-defined]
    channel.queue_declare(queue=xq_name(queue), durable=True, passive=True)
    tags = []
    while True:
        method, _, body = channel.basic_get(queue=xq_name(queue), auto_ack=False)
        if method is None:
            break
        message = _decode(body)
        if then is not None:
            then(_fresh(message))
        tags.append(method.delivery_tag)
        messages.append(message)
    for tag in tags:
        if remove:
            channel.basic_ack(tag)
        else:
            channel.basic_nack(tag, requeue=True)
    return messages
