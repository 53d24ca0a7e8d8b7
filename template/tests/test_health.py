"""Probes: /live, /ready and /health."""

from __future__ import annotations

from pathlib import Path

import pytest
from httpx import AsyncClient

from app.main import create_app
from tests.fixtures.client import client_for
from tests.fixtures.settings import make_settings

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
