"""The API's front door: every router under /api/v1 is included here.

Each route is behind the API's guard (app/middleware/api_guard.py): the token
check (AUTH_MODE jwt or oidc), whether or not a route asks for `CurrentUser`,
and a check that text sent to it can be stored. Your routers are listed in
app/api/v1.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import ModuleType

from fastapi import APIRouter, FastAPI

from app.errors import problem_responses

API_PREFIX = "/api/v1"


def routers_of(module: ModuleType) -> list[APIRouter]:
    """The routers app/api/v1.py lists in `routers`; or, in a service made
    before v0.10.0, its one `router` holding the others (FastAPI then matches
    every request through one more router: see the README's Upgrading)."""
    routers = getattr(module, "routers", None)
    return list(routers) if routers is not None else [module.router]


def include_api(app: FastAPI, routers: Iterable[APIRouter]) -> None:
    """Each of `routers` under API_PREFIX, with the problems the guard and
    the edge answer documented.

    Each router is included in the app itself, not in one API router first:
    FastAPI matches a request through every router that holds another, once
    for each level above it, at several µs a level."""
    for router in routers:
        app.include_router(
            router,
            prefix=API_PREFIX,
            responses=problem_responses(400, 401, 413, 415, 422, 503),
        )
