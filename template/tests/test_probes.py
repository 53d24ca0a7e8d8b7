"""The paths never traced, counted nor logged: defined once (app/probes.py),
and the same set wherever it is read."""

from __future__ import annotations

import pytest
from opentelemetry.util.http import parse_excluded_urls

from app.compat.fastapi_routes import route_table
from app.main import create_app
from app.probes import UNTRACED_PATHS, excluded_urls
from app.settings import Settings

pytestmark = pytest.mark.anyio


async def test_they_are_the_probes_and_metrics_the_app_serves(
    settings: Settings,
) -> None:
    served = {entry.template for entry in route_table(create_app(settings))}
    assert served >= UNTRACED_PATHS


def test_the_instrumentation_excludes_exactly_them() -> None:
    # What opentelemetry-instrumentation-fastapi makes of `excluded_urls`.
    excluded = parse_excluded_urls(excluded_urls())

    for path in UNTRACED_PATHS:
        assert excluded.url_disabled(f"http://api.example.com{path}")
    for path in ("/api/v1/items", "/lively", "/api/v1/health", "/metrics/x", "/"):
        assert not excluded.url_disabled(f"https://api.example.com{path}")
