"""The app's route table as requests see it: each route with its full path.

FastAPI (0.16x) keeps a router included in another as one branch object
that holds the original router and the prefix its inclusion adds; it builds
the routes' request handlers lazily, on the first request that reaches a
branch. Metrics (route templates), the 405 answer (allowed methods) and the
tests need only each route's full path and methods, so this walk reads the
branch's `original_router` and `include_context.prefix` and builds nothing:
about 0.1 ms for the template's routes, against 19 ms to have FastAPI build
every handler. Relied on (FastAPI's, not a public API): an included
router's branch has `original_router` (its `.routes`) and
`include_context.prefix`. tests/compat/test_fastapi_routes.py pins this
reading against FastAPI's own OpenAPI document.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from starlette.routing import compile_path


@dataclass(frozen=True, slots=True)
class RouteEntry:
    route: Any  # the route object FastAPI puts in the scope ("route")
    endpoint: Any  # the endpoint Starlette puts in the scope ("endpoint")
    template: str  # the full path template: /api/v1/items/{item_id}
    regex: re.Pattern[str]
    methods: frozenset[str]  # empty for WebSocket routes


def route_table(app: Any) -> list[RouteEntry]:
    """Every route the app (or router) serves now, included routers' too."""
    return list(_walk(getattr(app, "routes", ()), ""))


def _walk(routes: Any, prefix: str) -> Iterator[RouteEntry]:
    for route in routes:
        router = getattr(route, "original_router", None)
        inclusion = getattr(route, "include_context", None)
        if router is not None and inclusion is not None:  # an included router
            yield from _walk(router.routes, prefix + inclusion.prefix)
            continue
        endpoint, path = getattr(route, "endpoint", None), getattr(route, "path", None)
        if endpoint is None or not isinstance(path, str):
            continue  # a mount: its app's routes are its own
        regex, template, _ = compile_path(prefix + path)
        methods = frozenset(getattr(route, "methods", None) or ())
        yield RouteEntry(route, endpoint, template, regex, methods)
