"""The X-Request-ID middleware."""

from __future__ import annotations

import pytest
from httpx import AsyncClient

from app.middleware.request_id import incoming_request_id, new_request_id

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
