"""Outgoing HTTP: one shared client with timeouts, opened by the lifespan.

Every call the service makes leaves through `HttpClientDep` (or the
`http_client` in the lifespan state), so no call can hang a request forever:
connecting is bounded by HTTP_CLIENT_CONNECT_TIMEOUT and every read, write
and pool wait by HTTP_CLIENT_TIMEOUT. Each call carries the `X-Request-ID` of
the request or task it is made for, so the next service's log lines join
this one's with tracing off too; calls are traced when tracing is on.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import httpx
from fastapi import Depends, Request

from app.logging import REQUEST_FIELDS
from app.middleware.request_id import VALID_ID
from app.settings import HttpSettings, Settings
from app.state import state_of

REQUEST_ID_HEADER = "X-Request-ID"


@functools.cache
def tls_context() -> ssl.SSLContext:
    """httpx's own verification (certifi's CAs, or SSL_CERT_FILE), read once
    per process: each client would otherwise take about 30 ms to build it."""
    return httpx.create_ssl_context()


async def send_request_id(request: httpx.Request) -> None:
    """Event hook: the current request's or task's id, unless the caller
    set the header itself."""
    fields = REQUEST_FIELDS.get()
    if fields is None or REQUEST_ID_HEADER in request.headers:
        return
    request_id = fields["request_id"]
    # A task's id came in a message another producer may have written.
    if VALID_ID.fullmatch(request_id.encode("ascii", "replace")):
        request.headers[REQUEST_ID_HEADER] = request_id


def create_http_client(
    settings: HttpSettings, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """A client whose every wait is bounded; `transport` is for tests."""
    timeout = httpx.Timeout(
        settings.client_timeout, connect=settings.client_connect_timeout
    )
    return httpx.AsyncClient(
        timeout=timeout,
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        follow_redirects=False,
        verify=tls_context(),
        transport=transport,
        event_hooks={"request": [send_request_id]},
    )


@asynccontextmanager
async def http_client_lifespan(settings: Settings) -> AsyncIterator[dict[str, Any]]:
    async with create_http_client(settings.http) as client:
        yield {"http_client": client}


def get_http_client(request: Request) -> httpx.AsyncClient:
    return state_of(request)["http_client"]


HttpClientDep = Annotated[httpx.AsyncClient, Depends(get_http_client)]
