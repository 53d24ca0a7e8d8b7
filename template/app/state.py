"""The state the lifespan opens, as every request reads it.

Starlette copies the lifespan's state into each request's scope; the
template's dependencies read it through `state_of(request)`, typed, and a
plugin's values (`Resources.values`) sit beside it under their own names,
each read by the plugin's own dependency.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NotRequired, TypedDict, cast

from starlette.requests import HTTPConnection

if TYPE_CHECKING:
    import httpx
    from sqlalchemy.ext.asyncio import async_sessionmaker
    from sqlmodel.ext.asyncio.session import AsyncSession

    from app.auth import Authenticator
    from app.db import Outage
    from app.health import Check, CheckRuns
    from app.ratelimit import RateLimiter
    from app.settings import Settings


class State(TypedDict):
    """What the lifespan opened for the app's lifetime."""

    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    database_outage: Outage
    checks: list[Check]
    check_runs: CheckRuns
    started_at: float
    http_client: httpx.AsyncClient
    authenticator: Authenticator
    rate_limiter: RateLimiter
    # Set per request, on its own copy of the state: its id
    # (ObservabilityMiddleware), and the caller's once known (app.auth).
    request_id: NotRequired[str]
    user_id: NotRequired[str]


def state_of(connection: HTTPConnection) -> State:
    """The lifespan's state, as this request sees it."""
    return cast("State", connection.scope["state"])


def value_of(connection: HTTPConnection, name: str) -> object:
    """A plugin's value (`Resources.values[name]`), as this request sees it."""
    return connection.scope["state"][name]
