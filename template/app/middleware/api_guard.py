"""The API's guard: every request under /api/v1, before any route runs.

- The caller (app.auth): with AUTH_MODE jwt or oidc a valid bearer token is
  needed (GET and HEAD go without while AUTH_PUBLIC_READS is on), even by a
  route that forgot `CurrentUser`, even for a path no route serves, and for
  a WebSocket (closed with 1008 before its handshake). The caller is kept
  for `CurrentUser`, the log lines and the access line.
- Text a database cannot store: NUL (PostgreSQL refuses it in text) and lone
  surrogates (no encoding has them), in the path, the query or a JSON body,
  answer 422 naming the field, before a route passes them to the database,
  which would fail the request with a 500.

It runs inside the plugins' middleware, just outside the routes: a plugin's
middleware that rewrites a path or reads the body comes first. Pure ASGI
rather than a router dependency: FastAPI solves each dependency of
each request, at about 20 µs a dependency, as much as the rest of the stack.
The OpenAPI document still declares the token (app.auth.document_security).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import suppress
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api import API_PREFIX
from app.auth import authenticated
from app.errors import (
    AppError,
    InvalidBody,
    app_error_response,
    validation_error_response,
)

UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
UNSTORABLE_MESSAGE = "Text must not contain NUL characters or lone surrogates"
# Bytes of a body that may hold such text: an escape (\u0000, \udc80), a NUL
# (itself, or UTF-16/32), an encoded surrogate (0xED). Any other body has none.
SUSPECT_BYTES = (b"\\u", b"\x00", b"\xed")
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# The WebSocket close code for a refused connection.
POLICY_VIOLATION = 1008


def unstorable_text(
    value: Any, location: tuple[str | int, ...]
) -> Iterator[dict[str, Any]]:
    """A validation error for each string (key or value) in `value` that a
    database cannot store."""
    if isinstance(value, str):
        if UNSTORABLE.search(value):
            yield {
                "loc": location,
                "msg": UNSTORABLE_MESSAGE,
                "type": "string_unstorable",
            }
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from unstorable_text(key, location)
            yield from unstorable_text(item, (*location, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from unstorable_text(item, (*location, index))


class ApiGuardMiddleware:
    """Pure ASGI middleware; requests outside API_PREFIX pass straight through."""

    def __init__(self, app: ASGIApp, prefix: str = API_PREFIX) -> None:
        self.app = app
        self.prefix = prefix
        self.under = prefix + "/"

    def guards(self, scope: Scope) -> bool:
        """Whether the path (below the root path, as Starlette routes it) is
        the API's."""
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if (
            root
            and path.startswith(root)
            and path[len(root) : len(root) + 1] in ("", "/")
        ):
            path = path[len(root) :]
        return path.startswith(self.under) or path == self.prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not self.guards(scope):
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        refusal: Response | None = None
        try:
            await authenticated(connection)
        except AppError as error:
            refusal = app_error_response(connection, error)
        if refusal is None and (errors := list(unstorable_in_url(scope))):
            refusal = validation_error_response(connection, errors)
        if refusal is not None:
            if scope["type"] == "websocket":
                # Refused before the handshake completes (RFC 6455: a 403).
                await send({"type": "websocket.close", "code": POLICY_VIOLATION})
            else:
                await refusal(scope, receive, send)
            return
        if (
            scope["type"] == "http"
            and scope["method"] in BODY_METHODS
            and is_json(scope)
        ):
            receive = checked_body(receive)
        await self.app(scope, receive, send)


def unstorable_in_url(scope: Scope) -> Iterator[dict[str, Any]]:
    """Errors for text in the path or the query that cannot be stored (the
    server has decoded the path; the query is decoded here only if it holds
    a NUL: its decoding replaces invalid bytes, so it has no surrogates)."""
    yield from unstorable_text(scope["path"], ("path",))
    if b"%00" in scope["query_string"]:
        for name, value in parse_qsl(
            scope["query_string"].decode("latin-1"), keep_blank_values=True
        ):
            yield from unstorable_text(value, ("query", name))


def is_json(scope: Scope) -> bool:
    """Whether FastAPI may read the body as JSON (it does when no type is
    given, and matches the type without regard to case)."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            return b"json" in value.lower()
    return True


def checked_body(receive: Receive) -> Receive:
    """`receive`, raising InvalidBody (a 422) once the whole body is read if its
    JSON holds text that cannot be stored. Not JSON: the route's validation
    answers."""
    chunks: list[bytes] = []

    async def receive_checked() -> Message:
        message = await receive()
        if message["type"] != "http.request":
            return message
        chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return message
        body = b"".join(chunks)
        if any(suspect in body for suspect in SUSPECT_BYTES):
            # Parsed as FastAPI will parse it (json.loads reads UTF-16/32).
            with suppress(ValueError):
                errors = list(unstorable_text(json.loads(body), ("body",)))
                if errors:
                    raise InvalidBody(errors)
        return message

    return receive_checked
