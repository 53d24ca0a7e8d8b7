"""The API's front door: every router under /api/v1 is mounted here, behind
the token check (AUTH_MODE jwt or oidc), whether or not a route asks for
`CurrentUser`. Your routers are listed in app/api/v1.py."""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import APIRouter

from app.auth import AUTHENTICATED
from app.errors import problem_responses

API_PREFIX = "/api/v1"


def api_router(routers: Iterable[APIRouter]) -> APIRouter:
    """One router under API_PREFIX holding `routers`, each route guarded."""
    api = APIRouter(
        prefix=API_PREFIX,
        dependencies=[AUTHENTICATED],
        responses=problem_responses(400, 401, 413, 422, 503),
    )
    for router in routers:
        api.include_router(router)
    return api
