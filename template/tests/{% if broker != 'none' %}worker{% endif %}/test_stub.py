"""Background tasks on the embedded default: the stub broker and a worker
inside the API process."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from httpx import AsyncClient
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.main import create_app
from app.publications.tasks import publish_item
from app.worker import dead_letters
from app.worker.jobs import Jobs
from app.worker.registry import task_name
from tests.fixtures.client import client_and_state, client_for
from tests.fixtures.identity import user_headers
from tests.fixtures.otlp import http_collector
from tests.fixtures.settings import make_settings, production_values
from tests.worker.tasks import always_fails

pytestmark = pytest.mark.anyio
TEST_MODULES = ["app.publications.tasks", "tests.worker.tasks"]
FAST_RETRIES = {"max_retries": 2, "min_backoff_ms": 10, "max_backoff_ms": 20}


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[AsyncClient, dramatiq.Broker]]:
    """An app on a migrated SQLite file with its in-process worker running."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    settings = make_settings(
        url,
        database={"dsn": url, "migrate_on_start": True},
        worker={"modules": TEST_MODULES, **FAST_RETRIES},
    )
    async with client_and_state(
        create_app(settings), headers=user_headers(settings)
    ) as (client, state):
        client.headers["x-test-database"] = url  # for request_key()
        yield client, state["broker"]


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def publication(client: AsyncClient, item_id: int) -> dict[str, Any]:
    body: dict[str, Any] = (
        await client.get(f"/api/v1/items/{item_id}/publication")
    ).json()
    return body


async def test_publishing_runs_the_task_in_process(
    running: tuple[AsyncClient, dramatiq.Broker],
) -> None:
    client, _ = running
    item = (await client.post("/api/v1/items", json={"name": "news"})).json()

    queued = await client.post(f"/api/v1/items/{item['id']}/publish")

    assert queued.status_code == 202
    assert queued.json()["message_id"]

    async def published() -> bool:
        body = await publication(client, item["id"])
        return body["published_at"] is not None and body["publish_count"] == 1

    await eventually(published)


async def test_publishing_a_missing_item_is_404(
    running: tuple[AsyncClient, dramatiq.Broker],
) -> None:
    client, _ = running

    response = await client.post("/api/v1/items/424242/publish")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_duplicate_message_does_not_repeat_the_effect(
    running: tuple[AsyncClient, dramatiq.Broker],
) -> None:
    client, broker = running
    item = (await client.post("/api/v1/items", json={"name": "twice"})).json()
    await client.post(f"/api/v1/items/{item['id']}/publish")

    async def published_once() -> bool:
        body = await publication(client, item["id"])
        return bool(body["publish_count"] == 1)

    await eventually(published_once)
    first = await publication(client, item["id"])
    # Deliver the same request's message twice more, as at-least-once may.
    sent = broker.get_actor(task_name(publish_item))
    key = await request_key(client, item["id"])
    for _ in range(2):
        broker.enqueue(sent.message(item["id"], key))
    await join(broker, sent.queue_name)

    again = await publication(client, item["id"])
    assert again["publish_count"] == 1
    assert again["published_at"] == first["published_at"]


async def request_key(client: AsyncClient, item_id: int) -> str:
    """The key the last publish of this item sent (read from the database)."""
    engine = create_async_engine(str(client.headers["x-test-database"]))
    async with engine.connect() as connection:
        key = (
            await connection.execute(
                text("SELECT request_key FROM item_publications WHERE item_id = :id"),
                {"id": item_id},
            )
        ).scalar_one()
    await engine.dispose()
    return str(key)


async def test_a_failing_task_is_retried_then_dead_lettered_then_requeued(
    running: tuple[AsyncClient, dramatiq.Broker],
) -> None:
    _, broker = running

    await Jobs(broker).send(always_fails, "boom")
    await join(broker, "default")

    dead = dead_letters.list_dead(broker, "default")
    # One attempt and two retries (WORKER_MAX_RETRIES=2) all failed.
    assert [(d.actor, d.args, d.failures) for d in dead] == [
        (task_name(always_fails), ("boom",), 3)
    ]
    assert dead[0].error == "RuntimeError: boom"
    assert dead_letters.requeue(broker, "default") == 1
    assert dead_letters.list_dead(broker, "default") == []
    await join(broker, "default")
    assert len(dead_letters.list_dead(broker, "default")) == 1
    assert dead_letters.purge(broker, "default") == 1
    assert dead_letters.list_dead(broker, "default") == []


async def test_the_broker_is_checked_by_ready(
    running: tuple[AsyncClient, dramatiq.Broker],
) -> None:
    client, _ = running

    body = (await client.get("/ready")).json()

    assert body["checks"]["broker"]["status"] == "ok"


async def join(broker: dramatiq.Broker, queue: str) -> None:
    """Wait until the stub broker's queue is empty (dead letters included)."""
    assert isinstance(broker, StubBroker)
    await asyncio.to_thread(lambda: broker.join(queue, fail_fast=False))


def closed_broker_dsn() -> str:
    """A DSN of the installed broker's kind, on a port nothing listens on."""
    if importlib.util.find_spec("redis") is not None:
        return "redis://127.0.0.1:1/0"
    return "amqp://guest:guest@127.0.0.1:1/%2F"  # pragma: allowlist secret


async def test_a_broker_down_is_a_503_and_reads_keep_working(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    settings = make_settings(
        url,
        database={"dsn": url, "migrate_on_start": True},
        worker={"broker_dsn": closed_broker_dsn()},
    )
    async with client_for(
        create_app(settings), headers=user_headers(settings)
    ) as client:
        item = (await client.post("/api/v1/items", json={"name": "stuck"})).json()
        queued = await client.post(f"/api/v1/items/{item['id']}/publish")
        ready = await client.get("/ready")
        read = await client.get(f"/api/v1/items/{item['id']}")

    assert queued.status_code == 503
    assert queued.headers["content-type"] == "application/problem+json"
    assert queued.json()["detail"] == "the task queue is unavailable; try again later"
    assert ready.status_code == 503
    assert ready.json()["checks"]["broker"]["status"] == "fail"
    assert ready.json()["checks"]["database"]["status"] == "ok"
    assert read.status_code == 200


def test_production_refuses_the_stub_broker() -> None:
    with pytest.raises(ValidationError, match="WORKER_BROKER_DSN must be set"):
        make_settings("postgresql+asyncpg://u@db/app", **production_values(worker={}))


def test_broker_dsn_schemes_are_checked() -> None:
    with pytest.raises(ValidationError, match="must start with redis://"):
        make_settings("sqlite+aiosqlite:///x.db", worker={"broker_dsn": "kafka://x"})


async def test_the_in_process_worker_reports_dramatiq_metrics(
    running: tuple[AsyncClient, dramatiq.Broker],
) -> None:
    client, _ = running
    item = (await client.post("/api/v1/items", json={"name": "counted"})).json()
    await client.post(f"/api/v1/items/{item['id']}/publish")

    async def counted() -> bool:
        metrics = (await client.get("/metrics")).text
        line = "dramatiq_messages_total{" + f'actor_name="{task_name(publish_item)}"'
        return any(
            row.startswith(line) and float(row.rsplit(" ", 1)[1]) >= 1
            for row in metrics.splitlines()
        )

    await eventually(counted)


async def test_a_task_continues_the_trace_of_the_request_that_sent_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    with http_collector() as (endpoint, received):
        settings = make_settings(
            url,
            database={"dsn": url, "migrate_on_start": True},
            worker={"modules": TEST_MODULES, **FAST_RETRIES},
            otel={"exporter_otlp_endpoint": endpoint, "traces_sampler_arg": 1.0},
            log={"format": "json", "level": "INFO"},
        )
        async with client_for(
            create_app(settings), headers=user_headers(settings)
        ) as client:
            item = (await client.post("/api/v1/items", json={"name": "t"})).json()
            await client.post(f"/api/v1/items/{item['id']}/publish")

            async def published() -> bool:
                body = await publication(client, item["id"])
                return body["published_at"] is not None

            await eventually(published)

        [request] = received.named("POST /api/v1/items/{item_id}/publish")
        [task] = received.named(f"task {task_name(publish_item)}")

    assert task.trace_id == request.trace_id
    assert task.kind == Span.SPAN_KIND_CONSUMER
    in_task = [s for s in received.spans if s.parent_span_id == task.span_id]
    assert in_task, "the task's queries are its children"
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    done = [line for line in lines if line["message"] == "task done"]
    assert [line["trace_id"] for line in done] == [request.trace_id.hex()]
    assert done[0]["span_id"] == task.span_id.hex()
