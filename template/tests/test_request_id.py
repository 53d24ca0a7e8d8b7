"""The X-Request-ID middleware, and the id carried to the services this one
calls."""

from __future__ import annotations

import pytest
from httpx import AsyncClient

from app.clients import HttpClientDep
from app.main import create_app
from app.middleware.request_id import incoming_request_id, new_request_id
from app.settings import Settings
from tests.fixtures.client import client_for
from tests.fixtures.network import downstream_server

pytestmark = pytest.mark.anyio


async def test_a_well_formed_incoming_id_is_returned(client: AsyncClient) -> None:
    response = await client.get("/live", headers={"X-Request-ID": "abc-123_4.5:6"})

    assert response.headers["x-request-id"] == "abc-123_4.5:6"


@pytest.mark.parametrize(
    "bad_id", ["short", "x" * 129, "has space inside", 'quote"injection-123']
)
async def test_a_malformed_incoming_id_is_replaced(
    client: AsyncClient, bad_id: str
) -> None:
    response = await client.get("/live", headers={"X-Request-ID": bad_id})

    returned = response.headers["x-request-id"]
    assert returned != bad_id
    assert len(returned) == 32


async def test_an_id_is_made_when_none_is_sent(client: AsyncClient) -> None:
    first = (await client.get("/live")).headers["x-request-id"]
    second = (await client.get("/live")).headers["x-request-id"]

    assert first != second
    assert int(first, 16) >= 0


def test_new_ids_are_128_bit_hex() -> None:
    ids = {new_request_id() for _ in range(1000)}

    assert len(ids) == 1000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_a_raw_header_with_a_line_break_is_refused() -> None:
    """httpx cannot send one; a raw ASGI scope can."""
    scope = {"type": "http", "headers": [(b"x-request-id", b"abc\r\nforged: 1-2345")]}

    assert incoming_request_id(scope) is None


async def test_outgoing_calls_carry_the_request_id_with_tracing_off(
    settings: Settings,
) -> None:
    """The next service's log lines can be joined with this one's by the id,
    without a trace (`traceparent` is sent only with tracing on)."""
    assert not settings.otel.enabled
    app = create_app(settings)

    with downstream_server() as (url, seen):

        @app.get("/call-out")
        async def call_out(outgoing: HttpClientDep) -> None:
            await outgoing.get(url)
            await outgoing.get(url, headers={"X-Request-ID": "chosen-by-the-caller"})

        async with client_for(app) as client:
            answered = await client.get(
                "/call-out", headers={"X-Request-ID": "joined-up-0001"}
            )

    assert answered.status_code == 200
    assert [headers.get("x-request-id") for headers in seen] == [
        "joined-up-0001",
        "chosen-by-the-caller",
    ]


async def test_a_call_made_outside_a_request_carries_no_id(settings: Settings) -> None:
    from app.clients import create_http_client

    with downstream_server() as (url, seen):
        async with create_http_client(settings.http) as outgoing:
            await outgoing.get(url)

    assert "x-request-id" not in seen[0]
