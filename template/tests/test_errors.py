"""Every error is RFC 9457 problem+json with the request id."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from httpx import AsyncClient

from app.logging import configure_logging
from app.main import create_app
from app.settings import Settings
from tests.fixtures.client import client_for
from tests.fixtures.probe import NOTES
from tests.fixtures.settings import make_settings

pytestmark = pytest.mark.anyio
APP = Path(__file__).resolve().parent.parent / "app"


async def test_unknown_route_is_a_problem_404(client: AsyncClient) -> None:
    response = await client.get("/nowhere")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 404
    assert body["title"] == "Not Found"
    assert body["request_id"] == response.headers["x-request-id"]


async def test_wrong_method_is_a_problem_405(client: AsyncClient) -> None:
    response = await client.put("/live")

    assert response.status_code == 405
    assert response.json()["title"] == "Method Not Allowed"


async def test_validation_errors_name_the_field_paths(client: AsyncClient) -> None:
    response = await client.post(NOTES, json={"description": 5})

    assert response.status_code == 422
    fields = {error["field"] for error in response.json()["errors"]}
    assert fields == {"body.name", "body.description"}


async def test_malformed_json_says_where_it_breaks(client: AsyncClient) -> None:
    response = await client.post(
        NOTES,
        content=b'{"name": "a",\n "description": }',
        headers={"content-type": "application/json"},
    )

    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["field"] == "body"
    assert error["type"] == "json_invalid"
    assert error["message"] == ("invalid JSON at line 2, column 17: Expecting value")


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/x-ndjson", None],
)
async def test_a_body_that_is_not_json_answers_415(
    client: AsyncClient, content_type: str | None
) -> None:
    """Whatever the type (curl -d sends a form; none at all is not JSON)."""
    headers = {"content-type": content_type} if content_type else {}
    response = await client.post(NOTES, content=b"name=a", headers=headers)

    assert response.status_code == 415, response.text
    body = response.json()
    assert body["detail"] == (
        "the body must be JSON: send it with Content-Type: application/json"
    )
    assert body["instance"] == NOTES
    assert body["request_id"] == response.headers["x-request-id"]


async def test_no_body_where_one_is_needed_stays_a_422(client: AsyncClient) -> None:
    response = await client.post(NOTES)

    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["body"]


async def test_unhandled_error_is_a_500_without_internals(settings: Settings) -> None:
    app = create_app(settings)
    stream = io.StringIO()
    json_settings = make_settings(settings.database.url, log={"format": "json"})
    configure_logging(json_settings, stream)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internal detail")

    async with client_for(app) as client:
        response = await client.get("/boom", headers={"X-Request-ID": "req-12345678"})

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "secret" not in response.text
    assert response.json()["request_id"] == "req-12345678"
    errors = [json.loads(line) for line in stream.getvalue().splitlines()]
    errors = [line for line in errors if line["level"] == "ERROR"]
    assert len(errors) == 1
    assert errors[0]["request_id"] == "req-12345678"
    assert errors[0]["exception"]["type"] == "RuntimeError"


def test_routers_do_not_raise_http_exceptions() -> None:
    """Domain cases go through AppError; only the framework raises HTTP errors."""
    routers = [path for path in APP.rglob("*.py") if "APIRouter(" in path.read_text()]

    assert routers
    assert [str(p) for p in routers if "HTTPException" in p.read_text()] == []
