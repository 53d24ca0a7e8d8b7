"""Probes: /live, /ready and /health."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from httpx import AsyncClient

from app.health import Check
from app.main import create_app
from app.plugin import Plugin, Resources
from app.settings import Settings
from tests.fixtures.client import client_for
from tests.fixtures.settings import make_settings, production_values

pytestmark = pytest.mark.anyio


async def test_live_answers_without_dependencies(client: AsyncClient) -> None:
    response = await client.get("/live")

    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_ready_checks_the_database(client: AsyncClient) -> None:
    response = await client.get("/ready")

    assert response.status_code == 200
    assert response.json()["checks"]["database"]["status"] == "ok"


async def test_health_reports_version_uptime_and_check_latency(
    client: AsyncClient,
) -> None:
    body = (await client.get("/health")).json()

    assert body["status"] == "ok"
    assert body["version"]
    assert body["template"].startswith("prodstarter-fastapi ")
    assert body["uptime_s"] >= 0
    assert body["checks"]["database"]["latency_ms"] >= 0


async def test_unreachable_database_fails_ready_but_not_live(tmp_path: Path) -> None:
    # A directory is not a database file: every connection attempt fails.
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path}")
    app = create_app(settings)

    async with client_for(app) as client:
        ready = await client.get("/ready")
        live = await client.get("/live")
        health = await client.get("/health")

    assert ready.status_code == 503
    assert ready.headers["content-type"] == "application/problem+json"
    assert ready.json()["detail"] == "not ready: database failed"
    assert ready.json()["checks"]["database"]["status"] == "fail"
    assert str(tmp_path) not in ready.text  # no internals in a public probe
    assert live.status_code == 200
    assert health.status_code == 503


class CountingCheck:
    """A dependency's check that counts its runs and takes a while."""

    def __init__(self) -> None:
        self.runs = 0

    async def __call__(self) -> None:
        self.runs += 1
        await asyncio.sleep(0.05)


async def test_a_flood_of_probes_runs_each_check_once_per_period(
    settings: Settings,
) -> None:
    check = CountingCheck()

    @asynccontextmanager
    async def counted(_: Settings) -> AsyncIterator[Resources]:
        yield Resources(checks=[Check("counted", check)])

    cached = make_settings(settings.database.url, health={"cache_seconds": 30})
    app = create_app(cached, extra_plugins=[Plugin(name="counted", lifespan=counted)])
    async with client_for(app) as client:
        answers = await asyncio.gather(
            *(client.get(path) for path in ("/ready", "/health") * 100)
        )

    assert {answer.status_code for answer in answers} == {200}
    assert check.runs == 1


async def test_health_needs_the_metrics_token_when_one_is_set(
    settings: Settings,
) -> None:
    guarded = make_settings(settings.database.url, metrics={"token": "m" * 40})
    async with client_for(create_app(guarded)) as client:
        without = await client.get("/health")
        wrong = await client.get("/health", headers={"authorization": "Bearer x"})
        right = await client.get(
            "/health", headers={"authorization": f"Bearer {'m' * 40}"}
        )
        ready = await client.get("/ready")

    assert (without.status_code, wrong.status_code) == (401, 401)
    assert "version" not in without.text
    assert right.status_code == 200
    assert ready.status_code == 200  # the probes stay open


async def test_production_serves_health_only_with_a_metrics_token(
    settings: Settings,
) -> None:
    production = make_settings(
        settings.database.url,
        database={"dsn": settings.database.url},
        **production_values(),
    )
    async with client_for(create_app(production)) as client:
        health = await client.get("/health", headers={"host": "api.example.com"})

    assert health.status_code == 404
    assert "version" not in health.text
