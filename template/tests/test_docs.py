"""/docs works without the internet: Swagger UI's files come from the service
(app/docs.py), not from a CDN a locked-down network cannot reach."""

from __future__ import annotations

import re

import pytest
from httpx import AsyncClient

pytestmark = pytest.mark.anyio


async def test_the_docs_page_loads_swagger_ui_from_the_service(
    anonymous: AsyncClient,
) -> None:
    page = await anonymous.get("/docs")

    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets, page.text
    assert all(asset.startswith("/docs/static/") for asset in assets), assets
    assert "http://" not in page.text
    assert "https://" not in page.text
    for asset in assets:
        served = await anonymous.get(asset)
        assert served.status_code == 200, asset
        assert len(served.content) > 0, asset
    bundle = await anonymous.get("/docs/static/swagger-ui-bundle.js")
    assert bundle.headers["content-type"].startswith(
        ("application/javascript", "text/javascript")
    )


async def test_the_oauth2_redirect_page_is_served(anonymous: AsyncClient) -> None:
    page = await anonymous.get("/docs/oauth2-redirect")

    assert page.status_code == 200
    assert "oauth2" in page.text.lower()
