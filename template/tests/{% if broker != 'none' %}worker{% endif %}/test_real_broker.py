"""A real broker and real worker processes: run when TEST_BROKER_DSN names a
Redis or RabbitMQ server. Each test uses its own queue (and Redis namespace)
and deletes them afterwards."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dramatiq
import pytest

from app import migrations
from app.main import create_app
from app.settings import Settings
from app.worker.broker import create_broker
from tests.fixtures.client import client_for
from tests.fixtures.identity import user_headers
from tests.fixtures.network import free_port
from tests.fixtures.otlp import http_collector
from tests.fixtures.settings import make_settings
from tests.worker.tasks import COUNTERS_TABLE, JOBS_PLUGIN

BROKER_DSN = os.environ.get("TEST_BROKER_DSN", "")
PROJECT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.broker,
    pytest.mark.slow,
    pytest.mark.skipif(not BROKER_DSN, reason="TEST_BROKER_DSN names no broker"),
]


class Harness:
    """A queue of our own on the real broker, a SQLite database, workers."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.database = tmp_path / "app.db"
        self.url = f"sqlite+aiosqlite:///{self.database}"
        self.queue = f"test-{secrets.token_hex(4)}"
        self.metrics_port = free_port()
        self.worker = {
            "broker_dsn": BROKER_DSN,
            "queue": self.queue,
            "namespace": f"test-{secrets.token_hex(4)}",
            "modules": ["tests.worker.tasks"],
            "max_retries": 2,
            "min_backoff_ms": 100,
            "max_backoff_ms": 200,
            "processes": 1,
            "threads": 2,
            "shutdown_timeout": 10,
            "redis_heartbeat_timeout_ms": 2000,
            "redis_maintenance_chance": 1_000_000,  # every command
            "metrics_port": self.metrics_port,
            "health_file": str(tmp_path / "heartbeat"),
            # Loose enough for a loaded CI machine: fresh means within 3 s.
            "heartbeat_interval": 1.0,
        }
        self.settings: Settings = make_settings(self.url, worker=self.worker)
        migrations.upgrade(self.url)
        with sqlite3.connect(self.database) as connection:
            connection.execute(COUNTERS_TABLE)
        self.broker = create_broker(self.settings.worker)
        self.processes: list[tuple[subprocess.Popen[bytes], Path]] = []
        self.extra_env: dict[str, str] = {}

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WORKER_")}
        env["DATABASE_DSN"] = self.url
        env["LOG_FORMAT"] = "json"
        env["LOG_LEVEL"] = "INFO"
        # Dramatiq's Prometheus files: one folder per test, not one per machine.
        env["dramatiq_prom_db"] = str(self.tmp_path / "prometheus")
        for key, value in self.worker.items():
            env[f"WORKER_{key.upper()}"] = (
                ",".join(value) if isinstance(value, list) else str(value)
            )
        return env | self.extra_env

    def start_worker(self) -> tuple[subprocess.Popen[bytes], Path]:
        log = self.tmp_path / f"worker-{len(self.processes)}.log"
        heartbeat = Path(str(self.worker["health_file"]))
        heartbeat.unlink(missing_ok=True)
        with log.open("wb") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "app.worker", "run"],
                cwd=PROJECT, env=self.env(), stdout=output, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.processes.append((process, log))
        wait_for(lambda: heartbeat.exists(), 60, lambda: log.read_text())
        return process, log

    def command(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - this interpreter, this module
            [sys.executable, "-m", "app.worker", *args],
            cwd=PROJECT, env=self.env(), capture_output=True, text=True, timeout=120,
            check=False,
        )  # fmt: skip

    def hits(self, key: str) -> int:
        with sqlite3.connect(self.database) as connection:
            row = connection.execute(
                "SELECT hits FROM test_counters WHERE key = ?", (key,)
            ).fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        for process, _ in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        delete_queues(self.broker, self.queue)
        self.broker.close()


def delete_queues(broker: dramatiq.Broker, queue: str) -> None:
    client = getattr(broker, "client", None)
    if client is not None:
        namespace = broker.namespace  # type: ignore[attr-defined]
        for key in client.scan_iter(f"{namespace}:*"):
            client.delete(key)
        return
    channel = broker.channel  # type: ignore[attr-defined]
    for name in (queue, f"{queue}.DQ", f"{queue}.XQ"):
        channel.queue_delete(name)


def wait_for(
    condition: Callable[[], bool], seconds: float, describe: Callable[[], str]
) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"not met within {seconds} s:\n{describe()}")


def log_lines(log: Path) -> list[dict[str, Any]]:
    lines = []
    for line in log.read_text().splitlines():
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return lines


def scrape(port: int) -> str:
    """The worker's metrics; its exposition server may still be starting."""
    url = f"http://127.0.0.1:{port}/metrics"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return str(response.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def logged(log: Path, message: str) -> int:
    """How many lines of the worker's log start with `message`."""
    return sum(1 for line in log_lines(log) if line["message"].startswith(message))


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path)
    try:
        yield harness
    finally:
        harness.close()


@pytest.mark.anyio
async def test_a_task_enqueued_through_the_api_runs_on_a_worker(
    harness: Harness,
) -> None:
    _, log = harness.start_worker()
    async with client_for(
        create_app(harness.settings, extra_plugins=[JOBS_PLUGIN]),
        headers=user_headers(harness.settings),
    ) as client:
        queued = await client.post(
            "/api/v1/test-jobs/real", headers={"X-Request-ID": "enqueue-request-0001"}
        )
        assert queued.status_code == 202
        ready = await client.get("/ready")

    wait_for(lambda: harness.hits("real") == 1, 30, log.read_text)
    # The task commits its effect before the worker logs that it is done.
    wait_for(lambda: logged(log, "task done") > 0, 30, log.read_text)
    assert ready.json()["checks"]["broker"]["status"] == "ok"
    done = [line for line in log_lines(log) if line["message"] == "task done"]
    assert done[0]["message_id"] == queued.json()["message_id"]
    assert done[0]["request_id"] == "enqueue-request-0001"
    assert done[0]["attempt"] == 1
    assert done[0]["actor"] == "tests.worker.tasks.count_once"
    metrics = await asyncio.to_thread(scrape, harness.metrics_port)
    assert "dramatiq_messages_total" in metrics
    assert "dramatiq_message_duration_milliseconds" in metrics
    assert harness.command("health").returncode == 0


@pytest.mark.anyio
async def test_the_worker_process_traces_the_task_in_the_request_s_trace(
    harness: Harness,
) -> None:
    with http_collector() as (endpoint, received):
        otel = {"exporter_otlp_endpoint": endpoint, "traces_sampler_arg": 1.0}
        harness.extra_env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_TRACES_SAMPLER_ARG": "1.0",
        }
        process, log = harness.start_worker()
        settings = make_settings(harness.url, worker=harness.worker, otel=otel)
        async with client_for(
            create_app(settings, extra_plugins=[JOBS_PLUGIN]),
            headers=user_headers(settings),
        ) as client:
            await client.post("/api/v1/test-jobs/traced")
        wait_for(lambda: logged(log, "task done") > 0, 30, log.read_text)
        # The worker exports its buffered spans when it stops.
        process.send_signal(signal.SIGTERM)
        process.wait(30)

        [request] = received.named("POST /api/v1/test-jobs/{key}")
        tasks = [s for s in received.spans if s.name.startswith("task ")]

    assert [task.trace_id for task in tasks] == [request.trace_id], log.read_text()
    statements = [s for s in received.spans if s.parent_span_id == tasks[0].span_id]
    assert statements, "the task's queries are spans of the worker too"
    done = [line for line in log_lines(log) if line["message"] == "task done"]
    assert done[0]["trace_id"] == request.trace_id.hex()


@pytest.mark.parametrize("phase", ["before_commit", "after_commit"])
def test_a_killed_worker_s_task_is_redelivered_and_happens_once(
    harness: Harness, phase: str
) -> None:
    process, log = harness.start_worker()
    key = f"kill-{phase}"
    sleeps = {"sleep_before": 3.0} if phase == "before_commit" else {"sleep_after": 3.0}
    harness.broker.get_actor("tests.worker.tasks.count_once").send(key, **sleeps)
    wait_for(lambda: logged(log, "task started") > 0, 30, log.read_text)
    if phase == "after_commit":
        wait_for(lambda: harness.hits(key) == 1, 30, log.read_text)

    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    _, second_log = harness.start_worker()

    wait_for(lambda: logged(second_log, "task done") > 0, 60, second_log.read_text)
    assert harness.hits(key) == 1


def test_a_failing_task_is_retried_dead_lettered_and_requeued(harness: Harness) -> None:
    _, log = harness.start_worker()
    harness.broker.get_actor("tests.worker.tasks.always_fails").send("always")

    def dead_lettered() -> bool:
        return (
            "1 dead-lettered message(s)"
            in harness.command("dead-letters", "list").stdout
        )

    wait_for(dead_lettered, 60, log.read_text)
    attempts = [
        line["attempt"]
        for line in log_lines(log)
        if line["message"].startswith("task failed")
    ]
    assert attempts == [1, 2, 3]
    listed = harness.command("dead-letters", "list").stdout
    assert "always_fails" in listed
    assert "RuntimeError: always" in listed

    requeued = harness.command("dead-letters", "requeue")
    assert "requeued 1 message(s)" in requeued.stdout, requeued.stderr
    wait_for(lambda: logged(log, "task failed") == 6, 60, log.read_text)
    wait_for(dead_lettered, 60, log.read_text)
    assert "purged 1 message(s)" in harness.command("dead-letters", "purge").stdout
    assert "0 dead-lettered" in harness.command("dead-letters", "list").stdout


@pytest.mark.parametrize("receiver", ["main_process", "process_group"])
def test_sigterm_mid_task_stops_in_time_and_loses_nothing(
    harness: Harness, receiver: str
) -> None:
    """Kubernetes signals the main process; systemd's default KillMode (and
    `kill -- -PGID`) signals the whole group, so each worker process gets the
    signal twice: once itself, once forwarded by the main process."""
    process, log = harness.start_worker()
    started = "sigterm-started"
    harness.broker.get_actor("tests.worker.tasks.count_once").send(
        started, sleep_before=2.0
    )
    wait_for(lambda: logged(log, "task started") > 0, 30, log.read_text)

    if receiver == "main_process":
        process.send_signal(signal.SIGTERM)
    else:
        os.killpg(process.pid, signal.SIGTERM)
    wait_for(lambda: logged(log, "Stopping worker process") > 0, 10, log.read_text)
    # Sent while the worker stops: done once, by this worker or the next.
    later = "sigterm-later"
    harness.broker.get_actor("tests.worker.tasks.count_once").send(later)
    code = process.wait(timeout=20)  # WORKER_SHUTDOWN_TIMEOUT (10 s) and 10 more

    assert code == 0, log.read_text()
    assert logged(log, "Killing worker process") == 0, log.read_text()
    if harness.hits(started) == 0:  # returned to the queue: another worker takes it
        _, log = harness.start_worker()
    wait_for(lambda: harness.hits(started) == 1, 60, log.read_text)
    if harness.hits(later) == 0:
        _, log = harness.start_worker()
    wait_for(lambda: harness.hits(later) == 1, 60, log.read_text)


def test_a_second_sigterm_kills_at_once_and_the_task_is_redelivered(
    harness: Harness,
) -> None:
    process, log = harness.start_worker()
    key = "sigterm-twice"
    harness.broker.get_actor("tests.worker.tasks.count_once").send(
        key, sleep_before=8.0
    )
    wait_for(lambda: logged(log, "task started") > 0, 30, log.read_text)
    process.send_signal(signal.SIGTERM)
    wait_for(lambda: logged(log, "Stopping worker process") > 0, 10, log.read_text)
    time.sleep(2.5)  # past the window in which a repeat is the same stop
    process.send_signal(signal.SIGTERM)

    assert process.wait(timeout=5) != 0, log.read_text()
    assert logged(log, "signalled again while stopping") == 1, log.read_text()
    assert harness.hits(key) == 0
    _, second_log = harness.start_worker()
    wait_for(lambda: harness.hits(key) == 1, 60, second_log.read_text)
