"""The edge of every request: hosts, body size, security headers, CORS,
and timeouts on the service's own outgoing calls."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.clients import create_http_client
from app.settings import HttpSettings, Settings
from tests.fixtures.client import client_for
from tests.fixtures.identity import user_headers
from tests.fixtures.probe import NOTES, notes_app
from tests.fixtures.settings import make_settings

pytestmark = pytest.mark.anyio


def edge_settings(settings: Settings, **overrides: Any) -> Settings:
    return make_settings(
        settings.database.url, database=settings.database.model_dump(), **overrides
    )


@pytest.fixture
def settings(module_settings: Settings) -> Settings:
    """Apps here commit, to a database of this module (SQLite only)."""
    return module_settings


async def test_a_host_not_allowed_answers_400(settings: Settings) -> None:
    app = notes_app(
        edge_settings(settings, allowed_hosts=["api.example.com", "*.internal.test"])
    )
    async with client_for(app, headers=user_headers(settings)) as client:
        allowed = await client.get(NOTES, headers={"host": "api.example.com:8443"})
        subdomain = await client.get(NOTES, headers={"host": "orders.internal.test"})
        refused = await client.get(NOTES, headers={"host": "evil.test"})
        lookalike = await client.get(
            NOTES, headers={"host": "api.example.com.evil.test"}
        )
        probe = await client.get("/live", headers={"host": "10.1.2.3:8000"})

    assert allowed.status_code == 200
    assert subdomain.status_code == 200
    assert refused.status_code == 400
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["request_id"] == refused.headers["x-request-id"]
    assert lookalike.status_code == 400
    # kubelet probes by pod IP.
    assert probe.status_code == 200


@pytest.mark.parametrize("allowed_hosts", [["api.example.com"], []])
async def test_two_host_headers_answer_400(
    settings: Settings, allowed_hosts: list[str]
) -> None:
    """The host check and the URLs the app builds (a redirect's Location)
    must not read different Host headers: two are refused, in either order."""
    app = notes_app(edge_settings(settings, allowed_hosts=allowed_hosts))
    async with client_for(app, headers=user_headers(settings)) as client:
        answers = [
            await client.get(f"{NOTES}/", headers=[("host", first), ("host", second)])
            for first, second in (
                ("evil.example", "api.example.com"),
                ("api.example.com", "evil.example"),
            )
        ]

    for answer in answers:
        assert answer.status_code == 400, (answer.status_code, answer.headers)
        assert "evil.example" not in answer.headers.get("location", "")
        assert answer.json()["detail"] == "a request has one Host header"


async def test_text_a_database_cannot_store_answers_422_naming_the_field(
    settings: Settings,
) -> None:
    """NUL (PostgreSQL refuses it in text: a 500 before) and lone surrogates,
    in a body, nested or not, and in the query, for every route under
    /api/v1: a 422 naming the field, before any route runs."""
    async with client_for(
        notes_app(settings), headers=user_headers(settings)
    ) as client:
        nul = await client.post(NOTES, json={"name": "a\x00b"})
        surrogate = await client.post(
            NOTES,
            content=b'{"name": "ok", "tags": {"x": "\\udc80"}}',
            headers={"content-type": "application/json"},
        )
        query = await client.get(NOTES, params={"limit": "5\x00"})
        capitals = await client.post(
            NOTES,
            content=b'{"name": "a\\u0000b"}',
            headers={"content-type": "Application/JSON"},
        )
        # The same, as other bytes json.loads also reads.
        bodies = {
            "utf-16": '{"name": "a\\u0000b"}'.encode("utf-16-le"),
            "encoded surrogate": b'{"name": "a\xed\xa0\x80"}',
        }
        others = [
            await client.post(NOTES, content=body, headers=headers)
            for body in bodies.values()
            for headers in ({"content-type": "application/json"}, {})
        ]

    assert (nul.status_code, surrogate.status_code, query.status_code) == (422,) * 3
    assert capitals.status_code == 422, capitals.text
    assert [e["field"] for e in nul.json()["errors"]] == ["body.name"]
    assert [e["field"] for e in surrogate.json()["errors"]] == ["body.tags.x"]
    assert [e["field"] for e in query.json()["errors"]] == ["query.limit"]
    for other in others:
        assert other.status_code in (400, 422), other.text  # never stored
        if other.status_code == 422:
            assert [e["field"] for e in other.json()["errors"]] == ["body.name"]


async def test_an_oversized_body_answers_413(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    settings = make_settings(
        url,
        database={"dsn": url, "migrate_on_start": True},
        http={"max_body_size": 2048},
    )
    app = notes_app(settings)
    big = {"name": "big", "description": "x" * 900, "padding": "y" * 2000}

    async def streamed() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"x" * 1000

    async with client_for(app, headers=user_headers(settings)) as client:
        declared = await client.post(NOTES, json=big)
        chunked = await client.post(
            NOTES,
            content=streamed(),
            headers={"content-type": "application/json"},
        )
        small = await client.post(NOTES, json={"name": "small"})

    assert declared.status_code == 413
    assert declared.headers["content-type"] == "application/problem+json"
    # The same members as every other problem.
    assert declared.json()["instance"] == NOTES
    assert chunked.json()["instance"] == NOTES
    # No Content-Length: refused as soon as the stream passes the limit.
    assert chunked.status_code == 413
    assert chunked.json()["detail"] == "the request body is larger than 2048 bytes"
    assert small.status_code == 201


async def test_every_response_carries_the_security_headers(settings: Settings) -> None:
    plain = notes_app(edge_settings(settings))
    strict = notes_app(edge_settings(settings, http={"hsts": True}))
    async with client_for(plain) as client:
        responses = [await client.get(p) for p in ("/live", NOTES, "/nope")]
    async with client_for(strict) as client:
        hsts = (await client.get("/live")).headers

    for response in responses:
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["content-security-policy"] == "frame-ancestors 'none'"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "strict-transport-security" not in response.headers
    assert hsts["strict-transport-security"] == "max-age=31536000; includeSubDomains"


async def test_cors_preflight_is_answered_only_for_configured_origins(
    settings: Settings,
) -> None:
    app = notes_app(
        edge_settings(settings, cors={"origins": "https://app.example.com"})
    )
    preflight = {
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization,content-type",
    }
    async with client_for(app) as client:
        allowed = await client.options(
            NOTES, headers={**preflight, "origin": "https://app.example.com"}
        )
        refused = await client.options(
            NOTES, headers={**preflight, "origin": "https://evil.example"}
        )
        simple = await client.get(
            "/live", headers={"origin": "https://app.example.com"}
        )

    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
    assert simple.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "x-request-id" in simple.headers["access-control-expose-headers"].lower()


async def test_without_cors_origins_no_cors_headers_are_sent(
    settings: Settings,
) -> None:
    async with client_for(notes_app(edge_settings(settings))) as client:
        response = await client.get("/live", headers={"origin": "https://a.example"})

    assert "access-control-allow-origin" not in response.headers


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A loopback server that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    listener.close()


async def test_outgoing_calls_time_out(silent_server: str) -> None:
    settings = HttpSettings(client_timeout=0.3, client_connect_timeout=0.3)
    # The outer bound only keeps a broken client from hanging the tests:
    # it would raise TimeoutError, not httpx's ReadTimeout.
    async with asyncio.timeout(30), create_http_client(settings) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(silent_server)
