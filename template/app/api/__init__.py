"""The API's front door: every router under /api/v1 is mounted here, behind
the token check (AUTH_MODE jwt or oidc), whether or not a route asks for
`CurrentUser`, and behind a check that text sent to it can be stored.
Your routers are listed in app/api/v1.py."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from contextlib import suppress
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError

from app.auth import AUTHENTICATED
from app.errors import problem_responses

API_PREFIX = "/api/v1"
# Text no database column holds: NUL (PostgreSQL refuses it in text) and
# lone surrogates (no encoding has them). JSON can only carry them escaped.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
UNSTORABLE_MESSAGE = "Text must not contain NUL characters or lone surrogates"


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


async def storable_text(request: Request) -> None:
    """422 naming the field for text that cannot be stored, before a route
    (the template's or yours) passes it to the database, where PostgreSQL
    would fail the request with a 500."""
    errors = [
        error
        for name, value in request.path_params.items()
        for error in unstorable_text(value, ("path", name))
    ]
    if b"%00" in request.scope["query_string"]:
        errors += [
            error
            for name, value in request.query_params.multi_items()
            for error in unstorable_text(value, ("query", name))
        ]
    content_type = request.headers.get("content-type", "")
    json_body = "json" in content_type or not content_type  # as FastAPI reads it
    if request.method in ("POST", "PUT", "PATCH") and json_body:
        # FastAPI has read the body already; this is its cached copy (form
        # bodies are not cached: they are not JSON, and not read here).
        body = await request.body()
        # Escapes, UTF-16/32 (NUL bytes) or encoded surrogates (0xED):
        # parse it as FastAPI did. Not JSON: the route's validation answers.
        if b"\\u" in body or b"\x00" in body or b"\xed" in body:
            with suppress(ValueError):
                errors += unstorable_text(json.loads(body), ("body",))
    if errors:
        raise RequestValidationError(errors)


def api_router(routers: Iterable[APIRouter]) -> APIRouter:
    """One router under API_PREFIX holding `routers`, each route guarded."""
    api = APIRouter(
        prefix=API_PREFIX,
        dependencies=[AUTHENTICATED, Depends(storable_text)],
        responses=problem_responses(400, 401, 413, 422, 503),
    )
    for router in routers:
        api.include_router(router)
    return api
