"""Prometheus metrics: labels by route template, what is not counted, access."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from httpx import AsyncClient
from pydantic import SecretStr
from sqlmodel.ext.asyncio.session import AsyncSession

from app.__main__ import share_metrics_between_processes
from app.main import create_app
from app.settings import Settings
from tests.fixtures.client import client_for
from tests.fixtures.factories import create_note
from tests.fixtures.identity import user_headers
from tests.fixtures.network import free_port
from tests.fixtures.probe import NOTE_ROUTE, NOTES, notes_app
from tests.fixtures.settings import make_settings, production_values

pytestmark = pytest.mark.anyio


def sample(exposition: str, name: str, **labels: str) -> float:
    """The value of one sample, 0.0 if it is not there."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in exposition.splitlines():
        if line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        if series.partition("{")[0] != name:
            continue
        found = ",".join(sorted(re.findall(r'\w+="[^"]*"', series)))
        if found == wanted:
            return float(value)
    return 0.0


async def scrape(client: AsyncClient) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def test_requests_are_counted_by_route_template_and_status_class(
    client: AsyncClient, session: AsyncSession
) -> None:
    existing = await create_note(session)
    before = await scrape(client)
    missing = {"method": "GET", "route": NOTE_ROUTE, "status": "4xx"}
    found = missing | {"status": "2xx"}

    await client.get(f"{NOTES}/123456")
    await client.get(f"{NOTES}/654321")
    assert (await client.get(existing)).status_code == 200

    after = await scrape(client)
    for labels, requests in ((missing, 2), (found, 1)):
        counted = sample(after, "http_requests_total", **labels)
        assert counted - sample(before, "http_requests_total", **labels) == requests
        assert (
            sample(after, "http_request_duration_seconds_count", **labels) >= requests
        )
    assert "123456" not in after, "raw paths never become labels"
    assert existing not in after


async def test_every_route_s_counters_start_at_zero(settings: Settings) -> None:
    """A counter first scraped at 1 has no increase(): the alert on 5xx would
    miss the first error."""
    app = create_app(settings)
    router = APIRouter()

    @router.post("/zero-{thing_id}")
    async def thing(thing_id: int) -> dict[str, int]:
        return {"id": thing_id}

    app.include_router(router, prefix="/api/v1")
    async with client_for(app) as client:
        exposition = await scrape(client)

    route = "/api/v1/zero-{thing_id}"
    for status in ("2xx", "4xx", "5xx"):
        labels = f'method="POST",route="{route}",status="{status}"'
        series = "http_requests_total{" + labels + "}"
        assert f"{series} 0.0" in exposition.splitlines()
    assert 'route="/ready"' not in exposition


async def test_unknown_paths_share_one_label(client: AsyncClient) -> None:
    labels = {"method": "GET", "route": "unmatched", "status": "4xx"}
    before = sample(await scrape(client), "http_requests_total", **labels)

    await client.get("/no/such/path/1")
    await client.get("/no/such/path/2")

    after = await scrape(client)
    assert sample(after, "http_requests_total", **labels) - before == 2
    assert "/no/such/path" not in after


async def test_probes_and_metrics_are_not_counted(client: AsyncClient) -> None:
    for path in ("/live", "/ready", "/health", "/metrics"):
        await client.get(path)

    exposition = await scrape(client)
    for route in ("/live", "/ready", "/health", "/metrics"):
        assert f'route="{route}"' not in exposition


async def test_nested_routers_and_mounts_are_labelled_with_the_full_template(
    settings: Settings,
) -> None:
    app = create_app(settings)
    inner = APIRouter(prefix="/inner")

    @inner.get("/{thing_id}")
    async def thing(thing_id: int) -> dict[str, int]:
        return {"id": thing_id}

    outer = APIRouter(prefix="/outer")
    outer.include_router(inner)
    app.include_router(outer, prefix="/api")
    sub = FastAPI()

    @sub.get("/reports/{report_id}")
    async def report(report_id: int) -> dict[str, int]:
        return {"id": report_id}

    app.mount("/sub", sub)
    async with client_for(app) as client:
        assert (await client.get("/api/outer/inner/7")).status_code == 200
        assert (await client.get("/sub/reports/8")).status_code == 200
        exposition = await scrape(client)

    for route in ("/api/outer/inner/{thing_id}", "/sub/reports/{report_id}"):
        labels = {"method": "GET", "route": route, "status": "2xx"}
        assert sample(exposition, "http_requests_total", **labels) >= 1


async def test_requests_in_progress_are_gauged(settings: Settings) -> None:
    app = create_app(settings)
    entered, release = asyncio.Event(), asyncio.Event()

    @app.get("/slow")
    async def slow() -> None:
        entered.set()
        await release.wait()

    async with client_for(app) as client:
        before = sample(await scrape(client), "http_requests_in_progress")
        pending = asyncio.create_task(client.get("/slow"))
        await entered.wait()
        during = sample(await scrape(client), "http_requests_in_progress")
        release.set()
        await pending
        after = sample(await scrape(client), "http_requests_in_progress")

    assert during - before == 1
    assert after == before


async def test_the_service_info_and_readiness_are_exposed(
    client: AsyncClient, settings: Settings
) -> None:
    await client.get("/ready")

    exposition = await scrape(client)
    info = {
        "service": settings.service.name,
        "version": settings.service.version,
        "environment": "test",
        "template": settings.service.template,
    }
    assert sample(exposition, "service_info", **info) == 1
    assert sample(exposition, "service_check_up", check="database") == 1


async def test_database_pool_gauges_follow_the_pool(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    settings = make_settings(
        url, database={"dsn": url, "migrate_on_start": True, "pool_size": 3}
    )
    async with client_for(
        notes_app(settings), headers=user_headers(settings)
    ) as client:
        before = await scrape(client)
        await client.get(NOTES)
        after = await scrape(client)

    assert sample(after, "db_pool_connections_open") >= 1
    assert sample(after, "db_pool_connections_in_use") == sample(
        before, "db_pool_connections_in_use"
    )
    assert sample(after, "db_pool_size") >= 3
    assert sample(after, "db_pool_max_connections") >= 3 + 10


async def test_a_metrics_token_keeps_others_out(settings: Settings) -> None:
    guarded = settings.model_copy(
        update={
            "metrics": settings.metrics.model_copy(
                update={"token": SecretStr("s3cret-token")}
            )
        }
    )
    async with client_for(create_app(guarded)) as client:
        anonymous = await client.get("/metrics")
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer no"})
        right = await client.get(
            "/metrics", headers={"Authorization": "Bearer s3cret-token"}
        )

    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert wrong.status_code == 401
    assert right.status_code == 200
    assert "http_requests_total" in right.text


async def test_with_a_metrics_port_the_api_does_not_serve_them(
    settings: Settings,
) -> None:
    separate = settings.model_copy(
        update={"metrics": settings.metrics.model_copy(update={"port": 9464})}
    )
    async with client_for(create_app(separate)) as client:
        assert (await client.get("/metrics")).status_code == 404


def wait_for(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer in {seconds} s")


@pytest.mark.slow
def test_several_server_processes_report_together(tmp_path: Path) -> None:
    """SERVER_WORKERS=2: each process counts its own requests; the metrics
    port adds them up (prometheus-client's multiprocess mode)."""
    port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "ENVIRONMENT": "test",
        "DATABASE_DSN": f"sqlite+aiosqlite:///{tmp_path / 'app.db'}",
        "DATABASE_MIGRATE_ON_START": "true",
        "SERVER_PORT": str(port),
        "SERVER_WORKERS": "2",
        "METRICS_PORT": str(metrics_port),
        "METRICS_TOKEN": "scrape-token-123",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "LOG_LEVEL": "WARNING",
    }
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "counter_999.db").write_bytes(b"stale")
    server = subprocess.Popen(
        [sys.executable, "-m", "app", "serve"], env=env, cwd=Path.cwd()
    )
    folder = tmp_path / "metrics"

    def live_gauge_files() -> int:
        return len(list(folder.glob("gauge_livesum_*.db")))

    try:
        wait_for(f"http://127.0.0.1:{port}/live")
        # One file each for the two server processes and the process serving
        # METRICS_PORT, once all three have imported app.metrics (the second
        # server process may still be starting when the first answers).
        deadline = time.monotonic() + 60
        while live_gauge_files() < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert live_gauge_files() == 3, "each process writes its own files"
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(40):
                # A new connection each time, so both processes take some.
                client.get("/docs", headers={"Connection": "close"})
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        anonymous = httpx.get(metrics_url)
        exposition = httpx.get(
            metrics_url, headers={"Authorization": "Bearer scrape-token-123"}
        ).text
    finally:
        server.terminate()
        server.wait(30)

    assert anonymous.status_code == 401, "the token guards the metrics port too"
    labels = {"method": "GET", "route": "/docs", "status": "2xx"}
    assert sample(exposition, "http_requests_total", **labels) == 40
    assert not (folder / "counter_999.db").exists(), "an earlier run's files go"


def test_serve_prepares_the_multiprocess_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "not" / "there"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(missing))
    share_metrics_between_processes()
    assert missing.is_dir()

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")
    share_metrics_between_processes()
    assert Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).is_dir()


def test_an_empty_metrics_token_means_none(settings: Settings) -> None:
    assert (
        make_settings(settings.database.url, metrics={"token": ""}).metrics.token
        is None
    )


def test_production_warns_while_metrics_are_public(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    production = production_values(log={"format": "json", "level": "INFO"})
    dsn = "postgresql+asyncpg://app@db.internal/app"
    create_app(make_settings(dsn, **production))
    guarded = make_settings(dsn, **production, metrics={"token": "t" * 20})
    public_warning = "/metrics is public"
    first = capsys.readouterr().out
    create_app(guarded)

    assert public_warning in first
    assert public_warning not in capsys.readouterr().out
