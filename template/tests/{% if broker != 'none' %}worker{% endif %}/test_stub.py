"""Background tasks on the embedded default: the stub broker and a worker
inside the API process."""

from __future__ import annotations

import asyncio
import importlib.util
import io
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from httpx import AsyncClient
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from pydantic import ValidationError

from app.logging import configure_logging
from app.main import TEMPLATE_PLUGINS, create_app
from app.plugin import Plugin
from app.worker import JobsDep, dead_letters, registry
from app.worker.jobs import Jobs
from app.worker.registry import task_name
from app.worker.runtime import InProcessWorker, StartOnFirstMessage
from tests.fixtures.client import client_and_state, client_for
from tests.fixtures.identity import user_headers
from tests.fixtures.network import downstream_server
from tests.fixtures.otlp import http_collector
from tests.fixtures.settings import make_settings, production_values
from tests.fixtures.tasks import EnqueuedTasks
from tests.worker.tasks import JOBS_PLUGIN, always_fails, count_once, report_to

pytestmark = pytest.mark.anyio
FAST_RETRIES = {"max_retries": 2, "min_backoff_ms": 10, "max_backoff_ms": 20}
JOBS = "/api/v1/test-jobs"


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[AsyncClient, dramatiq.Broker]]:
    """An app on a migrated SQLite file with its in-process worker (started
    by the first task sent)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    settings = make_settings(
        url, database={"dsn": url, "migrate_on_start": True}, worker=FAST_RETRIES
    )
    async with client_and_state(
        create_app(settings, extra_plugins=[JOBS_PLUGIN]),
        headers=user_headers(settings),
    ) as (client, state):
        yield client, state["broker"]


@pytest.fixture
def extra_plugins() -> list[Plugin]:
    """The `client` fixture's app has the test-jobs route too."""
    return [JOBS_PLUGIN]


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def hits(client: AsyncClient, key: str) -> int:
    response = await client.get(f"{JOBS}/{key}")
    return int(response.json()["hits"]) if response.status_code == 200 else 0


def in_process_worker(broker: dramatiq.Broker) -> InProcessWorker:
    [starter] = [m for m in broker.middleware if isinstance(m, StartOnFirstMessage)]
    return starter.worker


async def test_the_in_process_worker_starts_with_the_first_message(
    running: tuple[AsyncClient, dramatiq.Broker],
) -> None:
    client, broker = running
    worker = in_process_worker(broker)
    assert worker.worker is None  # an app that sends nothing runs no threads
    # Its counters are there at 0 all the same (test_task_counters_...).
    assert "dramatiq_messages_total" in (await client.get("/metrics")).text

    assert (await client.post(f"{JOBS}/first")).status_code == 202

    assert worker.worker is not None
    await eventually(lambda: has_hits(client, "first"))


async def test_a_worker_that_cannot_start_answers_503_not_202(
    running: tuple[AsyncClient, dramatiq.Broker], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, broker = running
    worker = in_process_worker(broker)

    def cannot_start() -> None:
        raise RuntimeError("no threads left")

    monkeypatch.setattr(worker, "start", cannot_start)
    response = await client.post(f"{JOBS}/lost")

    assert response.status_code == 503
    assert all(queue.qsize() == 0 for queue in broker.queues.values())


async def has_hits(client: AsyncClient, key: str) -> bool:
    return await hits(client, key) == 1


async def test_a_task_enqueued_by_a_route_runs_in_process(
    running: tuple[AsyncClient, dramatiq.Broker],
) -> None:
    client, _ = running

    queued = await client.post(f"{JOBS}/news")

    assert queued.status_code == 202
    assert queued.json()["message_id"]

    async def counted() -> bool:
        return await hits(client, "news") == 1

    await eventually(counted)


async def test_a_task_s_lines_and_calls_carry_the_request_that_sent_it(
    tmp_path: Path,
) -> None:
    """With tracing off: the task's own log lines, and the calls it makes
    through `create_http_client`, carry the request id of the request that
    sent it."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    settings = make_settings(
        url,
        database={"dsn": url, "migrate_on_start": True},
        worker=FAST_RETRIES,
        log={"format": "json", "level": "INFO"},
    )
    app = create_app(settings, extra_plugins=[JOBS_PLUGIN])
    stream = io.StringIO()
    configure_logging(settings, stream)

    with downstream_server() as (downstream, seen):

        @app.post("/report")
        async def report(jobs: JobsDep) -> None:
            await jobs.send(report_to, downstream)

        async def called() -> bool:
            return len(seen) == 1

        async with client_and_state(app, headers=user_headers(settings)) as (
            client,
            _,
        ):
            sent = await client.post(
                "/report", headers={"X-Request-ID": "sent-by-0001"}
            )
            assert sent.status_code == 200
            await eventually(called)

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    reported = [line for line in lines if line["message"].startswith("reporting to")]
    assert [line["request_id"] for line in reported] == ["sent-by-0001"]
    assert seen[0]["x-request-id"] == "sent-by-0001"


async def test_a_task_enqueued_through_client_runs_when_the_test_runs_it(
    client: AsyncClient, tasks: EnqueuedTasks
) -> None:
    queued = await client.post(f"{JOBS}/via-client")
    assert queued.status_code == 202
    # It waits: the test's rows are not committed, no worker could see them.
    assert (await client.get(f"{JOBS}/via-client")).json()["hits"] == 0

    assert await tasks.run() == 1

    assert (await client.get(f"{JOBS}/via-client")).json()["hits"] == 1
    assert await tasks.run() == 0


async def test_a_duplicate_message_does_not_repeat_the_effect(
    running: tuple[AsyncClient, dramatiq.Broker],
) -> None:
    client, broker = running
    await client.post(f"{JOBS}/twice")

    async def counted_once() -> bool:
        return await hits(client, "twice") == 1

    await eventually(counted_once)
    # Deliver the same task twice more, as at-least-once delivery may.
    sent = broker.get_actor(task_name(count_once))
    for _ in range(2):
        broker.enqueue(sent.message("twice"))
    await join(broker, sent.queue_name)

    assert await hits(client, "twice") == 1


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


async def test_a_broker_down_is_a_503_and_reads_keep_working(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    settings = make_settings(
        url,
        database={"dsn": url, "migrate_on_start": True},
        worker={"broker_dsn": closed_broker_dsn()},
        log={"format": "json", "level": "INFO"},
    )
    async with client_for(
        create_app(settings, extra_plugins=[JOBS_PLUGIN]),
        headers=user_headers(settings),
    ) as client:
        queued = await client.post(f"{JOBS}/stuck")
        again = await client.post(f"{JOBS}/stuck-again")
        ready = await client.get("/ready")
        # The route committed its request row before the send failed.
        read = await client.get(f"{JOBS}/stuck")

    assert queued.status_code == again.status_code == 503
    assert queued.headers["content-type"] == "application/problem+json"
    assert queued.headers["retry-after"] == "5"
    out = capsys.readouterr().out.splitlines()
    lines = [json.loads(line) for line in out if line.startswith("{")]
    said = [line["message"] for line in lines if "task queue" in line["message"]]
    assert len(said) == 1, said
    assert said[0].startswith("task queue unreachable (")
    assert queued.json()["detail"] == "the task queue is unavailable; try again later"
    assert ready.status_code == 503
    assert ready.json()["checks"]["broker"]["status"] == "fail"
    assert ready.json()["checks"]["database"]["status"] == "ok"
    assert read.status_code == 200
    assert read.json()["hits"] == 0


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
    await client.post(f"{JOBS}/counted")

    async def counted() -> bool:
        metrics = (await client.get("/metrics")).text
        line = "dramatiq_messages_total{" + f'actor_name="{task_name(count_once)}"'
        return any(
            row.startswith(line) and float(row.rsplit(" ", 1)[1]) >= 1
            for row in metrics.splitlines()
        )

    await eventually(counted)


def task_counts(exposition: str, actor: str) -> dict[tuple[str, str], float]:
    """(counter, queue) -> value of the Dramatiq counters for one task."""
    counts: dict[tuple[str, str], float] = {}
    for row in exposition.splitlines():
        name, _, rest = row.partition("{")
        if not name.startswith("dramatiq_") or f'actor_name="{actor}"' not in rest:
            continue
        queue = rest.split('queue_name="', 1)[1].split('"', 1)[0]
        counts[(name, queue)] = float(row.rsplit(" ", 1)[1])
    return counts


async def test_task_counters_start_at_zero_and_count_a_retry_once(
    running: tuple[AsyncClient, dramatiq.Broker],
) -> None:
    """Alert rules see the first dead letter only if its counter was 0 first."""
    client, broker = running
    actor = task_name(always_fails)
    counters = (
        "dramatiq_messages_total",
        "dramatiq_message_errors_total",
        "dramatiq_message_retries_total",
        "dramatiq_message_rejects_total",
    )
    before = task_counts((await client.get("/metrics")).text, actor)
    assert {name: before.get((name, "default")) for name in counters} == dict.fromkeys(
        counters, 0.0
    )

    await Jobs(broker).send(always_fails, "counted")
    await join(broker, "default")

    after = task_counts((await client.get("/metrics")).text, actor)
    # One attempt and two retries (WORKER_MAX_RETRIES=2), then a dead letter.
    assert {name: after.get((name, "default")) for name in counters} == {
        "dramatiq_messages_total": 3.0,
        "dramatiq_message_errors_total": 3.0,
        "dramatiq_message_retries_total": 2.0,
        "dramatiq_message_rejects_total": 1.0,
    }
    assert [key for key in after if key[1] != "default"] == []


async def test_a_task_continues_the_trace_of_the_request_that_sent_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    with http_collector() as (endpoint, received):
        settings = make_settings(
            url,
            database={"dsn": url, "migrate_on_start": True},
            worker=FAST_RETRIES,
            otel={"exporter_otlp_endpoint": endpoint, "traces_sampler_arg": 1.0},
            log={"format": "json", "level": "INFO"},
        )
        async with client_for(
            create_app(settings, extra_plugins=[JOBS_PLUGIN]),
            headers=user_headers(settings),
        ) as client:
            await client.post(f"{JOBS}/traced")

            async def counted() -> bool:
                return await hits(client, "traced") == 1

            await eventually(counted)

        [request] = received.named("POST /api/v1/test-jobs/{key}")
        [task] = received.named(f"task {task_name(count_once)}")

    assert task.trace_id == request.trace_id
    assert task.kind == Span.SPAN_KIND_CONSUMER
    in_task = [s for s in received.spans if s.parent_span_id == task.span_id]
    assert in_task, "the task's queries are its children"
    out = capsys.readouterr().out.splitlines()
    lines = [json.loads(line) for line in out if line.startswith("{")]
    done = [line for line in lines if line["message"] == "task done"]
    assert [line["trace_id"] for line in done] == [request.trace_id.hex()]
    assert done[0]["span_id"] == task.span_id.hex()


def test_every_plugin_s_task_modules_are_run_once_then_worker_modules() -> None:
    plugins = [
        Plugin(name="a", task_modules=["app.a.tasks", "app.shared.tasks"]),
        Plugin(name="b", task_modules=["app.shared.tasks"]),
    ]

    modules = registry.task_modules(plugins, ["app.extra.tasks", "app.a.tasks"])

    assert modules == ["app.a.tasks", "app.shared.tasks", "app.extra.tasks"]


def test_a_worker_process_finds_the_same_tasks_as_the_api() -> None:
    # A worker process reads app/plugins.py, not app.main (whose metrics must
    # not load before Dramatiq's process boot): the template's plugins must
    # bring no task modules of their own, or worker processes would miss them.
    assert registry.task_modules(TEMPLATE_PLUGINS, []) == []


@pytest.mark.slow
def test_the_worker_command_sets_the_metrics_port_before_dramatiq_reads_it() -> None:
    """Dramatiq's Prometheus middleware reads WORKER_METRICS_PORT's value once,
    on import: `python -m app.worker` must not import it before `run` sets it."""
    probe = (
        "import sys, app.worker.__main__;"
        " print('dramatiq.middleware.prometheus' in sys.modules)"
    )
    imported = subprocess.run(  # noqa: S603 - this interpreter
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert imported.stdout.strip() == "False"
