"""How a part of the service plugs into the app.

The template's own parts (rate limits, feature flags, the worker) and yours
(listed in app/plugins.py) plug in the same way: a `Plugin` names the routers,
middleware, lifespan resources, readiness checks, exception handlers,
worker task modules and feature flags it adds, and `create_app` (app/main.py) adds every
plugin's, in order. Nothing here needs editing to add a part of your own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

if TYPE_CHECKING:
    # Types only: app.settings imports the feature flags' module, which
    # imports this one, and the metrics must not be imported before
    # `python -m app serve` has prepared their folder.
    from app.health import Check
    from app.settings import Settings


@dataclass(frozen=True)
class Resources:
    """What a plugin's lifespan opened for the app's lifetime.

    `values` are set on every request's state (`request.state.<name>`);
    `checks` join the readiness checks of /ready.
    """

    values: Mapping[str, object] = field(default_factory=dict)
    checks: Sequence[Check] = ()


# Opens a plugin's resources for the app's lifetime, and closes them after.
Lifespan = Callable[["Settings"], AbstractAsyncContextManager[Resources]]
ExceptionHandler = Callable[[Request, Any], Awaitable[Response]]


@dataclass(frozen=True)
class Plugin:
    """One part of the service, as `create_app` plugs it in."""

    name: str
    # Included under /api/v1: behind the token check, with the common
    # problem responses documented.
    api_routers: Sequence[APIRouter] = ()
    # Included at the root, with no token check (public, like the probes).
    routers: Sequence[APIRouter] = ()
    # Pure ASGI middleware, outermost first. It runs inside the template's
    # own (request id, access line, host and body checks, CORS), so every
    # response it makes is logged and carries the security headers.
    middleware: Sequence[Middleware] = ()
    lifespan: Lifespan | None = None
    # Domain errors of your own, rendered by these (problem+json: see
    # app.errors.problem). AppError subclasses need none.
    exception_handlers: Mapping[type[Exception] | int, ExceptionHandler] = field(
        default_factory=dict
    )
    # Modules whose dramatiq actors the worker runs (`app.invoices.tasks`).
    task_modules: Sequence[str] = ()
    # Feature flags this part asks about, each with the value used while
    # nobody switched it on (FLAGS_ENABLED); used with feature flags only.
    flags: Mapping[str, bool] = field(default_factory=dict)
