"""The publications example: publishing an item in the background."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import dramatiq
import pytest
from httpx import AsyncClient

from app.main import create_app
from app.publications.tasks import publish_item
from app.worker.registry import task_name
from tests.conftest import BACKENDS
from tests.fixtures.client import client_and_state, client_for
from tests.fixtures.databases import postgres_server_url, temporary_postgres_database
from tests.fixtures.identity import user_headers
from tests.fixtures.settings import make_settings
from tests.fixtures.tasks import EnqueuedTasks
from tests.worker.test_real_broker import Harness, log_lines, logged, wait_for

ITEMS = "/api/v1/items"


async def publication(client: AsyncClient, item_id: int) -> dict[str, Any]:
    body: dict[str, Any] = (await client.get(f"{ITEMS}/{item_id}/publication")).json()
    return body


@pytest.mark.anyio
async def test_publishing_queues_the_task_and_running_it_publishes(
    client: AsyncClient, tasks: EnqueuedTasks
) -> None:
    item = (await client.post(ITEMS, json={"name": "news"})).json()

    queued = await client.post(f"{ITEMS}/{item['id']}/publish")

    assert queued.status_code == 202
    assert queued.json()["message_id"]
    assert (await publication(client, item["id"]))["published_at"] is None
    assert await tasks.run() == 1
    published = await publication(client, item["id"])
    assert published["published_at"] is not None
    assert published["publish_count"] == 1


@pytest.mark.anyio
async def test_publishing_a_missing_item_is_404(
    client: AsyncClient, tasks: EnqueuedTasks
) -> None:
    response = await client.post(f"{ITEMS}/424242/publish")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert await tasks.run() == 0


Running = tuple[AsyncClient, dramatiq.Broker, Path]


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    """The app on a migrated SQLite file (its path too), its in-process
    worker running."""
    database = tmp_path / "app.db"
    url = f"sqlite+aiosqlite:///{database}"
    settings = make_settings(url, database={"dsn": url, "migrate_on_start": True})
    async with client_and_state(
        create_app(settings), headers=user_headers(settings)
    ) as (client, state):
        yield client, state["broker"], database


async def eventually_published(client: AsyncClient, item_id: int) -> dict[str, Any]:
    for _ in range(200):
        body = await publication(client, item_id)
        if body["published_at"] is not None:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"item {item_id} was not published in time")


@pytest.mark.anyio
async def test_a_publish_request_s_message_delivered_again_publishes_once(
    running: Running,
) -> None:
    client, broker, database = running
    item = (await client.post(ITEMS, json={"name": "twice"})).json()
    await client.post(f"{ITEMS}/{item['id']}/publish")
    first = await eventually_published(client, item["id"])

    # The same request's message, delivered twice more.
    with sqlite3.connect(database) as connection:
        [key] = connection.execute(
            "SELECT request_key FROM item_publications WHERE item_id = ?",
            (item["id"],),
        ).fetchone()
    actor = broker.get_actor(task_name(publish_item))
    for _ in range(2):
        broker.enqueue(actor.message(item["id"], key))
    await asyncio.to_thread(broker.join, actor.queue_name)

    again = await publication(client, item["id"])
    assert again["publish_count"] == 1
    assert again["published_at"] == first["published_at"]


@pytest.fixture(params=BACKENDS)
async def committed_url(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[str]:
    """A database of the test's own that the app commits to."""
    server = postgres_server_url()
    if request.param == "postgresql" and server is not None:
        async with temporary_postgres_database(server) as url:
            yield url
    else:
        yield f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"


@pytest.mark.anyio
async def test_first_publish_requests_at_once_all_succeed(committed_url: str) -> None:
    """Eight first requests to publish an item, at once, five times: each is
    accepted (the publication row is upserted, not inserted twice)."""
    settings = make_settings(
        committed_url,
        database={"dsn": committed_url, "migrate_on_start": True},
        ratelimit={"write": "100000/minute"},
    )
    statuses = []
    async with client_for(
        create_app(settings), headers=user_headers(settings)
    ) as client:
        for round_ in range(5):
            item = (await client.post(ITEMS, json={"name": f"race-{round_}"})).json()
            answers = await asyncio.gather(
                *(client.post(f"{ITEMS}/{item['id']}/publish") for _ in range(8))
            )
            statuses += [answer.status_code for answer in answers]

    assert statuses == [202] * 40


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    """A real broker's queue of the test's own, and worker processes."""
    harness = Harness(tmp_path)
    # No WORKER_MODULES: the worker finds publish_item through app/plugins.py.
    harness.worker["modules"] = []
    try:
        yield harness
    finally:
        harness.close()


@pytest.mark.broker
@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("TEST_BROKER_DSN"), reason="TEST_BROKER_DSN names no broker"
)
@pytest.mark.anyio
async def test_a_worker_process_publishes_through_the_plugin_s_task_modules(
    harness: Harness,
) -> None:
    _, log = harness.start_worker()
    async with client_for(
        create_app(harness.settings), headers=user_headers(harness.settings)
    ) as client:
        item = (await client.post(ITEMS, json={"name": "real"})).json()
        queued = await client.post(f"{ITEMS}/{item['id']}/publish")
        assert queued.status_code == 202

    def published() -> bool:
        with sqlite3.connect(harness.database) as connection:
            row = connection.execute(
                "SELECT publish_count FROM item_publications WHERE item_id = ?",
                (item["id"],),
            ).fetchone()
        return bool(row and row[0] == 1)

    wait_for(published, 30, log.read_text)
    # The task commits its effect before the worker logs that it is done.
    wait_for(lambda: logged(log, "task done") > 0, 30, log.read_text)
    done = [line for line in log_lines(log) if line["message"] == "task done"]
    assert done[0]["actor"] == task_name(publish_item)
