"""Prometheus metrics: requests, the database pool and the service's identity.

Request metrics are labelled by method, route template (never the raw path:
`/api/v1/items/{item_id}`, or `unmatched`) and status class (`2xx`). Probes
and /metrics itself are not counted. Each route's counters exist from the
start at 0 (`count_from_zero`): a counter first scraped at 1 has no increase,
so the alert rules would miss its first error.

Several server processes (SERVER_WORKERS > 1) share their metrics through
prometheus-client's multiprocess mode: `python -m app serve` points
PROMETHEUS_MULTIPROC_DIR at an empty folder before it starts the workers, and
every scrape adds up the files there.
"""

from __future__ import annotations

import hmac
import os
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from pydantic import SecretStr
from sqlalchemy import event

from app.compat.fastapi_routes import route_table
from app.errors import NotAuthenticated
from app.probes import UNTRACED_PATHS
from app.state import state_of

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from app.settings import Settings

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"
STATUS_CLASSES = ("2xx", "4xx", "5xx")

REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests answered, by method, route template and status class.",
    ["method", "route", "status"],
)
DURATION = Histogram(
    "http_request_duration_seconds",
    "Time from the request's arrival to the end of its response.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
IN_PROGRESS = Gauge(
    "http_requests_in_progress",
    "HTTP requests being answered now.",
    multiprocess_mode="livesum",
)
INFO = Gauge(
    "service_info",
    "Always 1; the labels say which service, version and template release run.",
    ["service", "version", "environment", "template"],
    multiprocess_mode="max",
)
CHECK_UP = Gauge(
    "service_check_up",
    "1 if the dependency answered the last readiness check, else 0.",
    ["check"],
    multiprocess_mode="livemin",
)
POOL_SIZE = Gauge(
    "db_pool_size",
    "Connections the database pools keep open (DATABASE_POOL_SIZE).",
    multiprocess_mode="livesum",
)
POOL_MAX = Gauge(
    "db_pool_max_connections",
    "The most connections the pools may open (size plus overflow).",
    multiprocess_mode="livesum",
)
POOL_OPEN = Gauge(
    "db_pool_connections_open",
    "Database connections open now.",
    multiprocess_mode="livesum",
)
POOL_IN_USE = Gauge(
    "db_pool_connections_in_use",
    "Database connections checked out of the pool now.",
    multiprocess_mode="livesum",
)


def is_multiprocess() -> bool:
    # The test prometheus-client itself makes when it creates a metric.
    return "PROMETHEUS_MULTIPROC_DIR" in os.environ


def exposition() -> bytes:
    """The text exposition of every metric of this service (all processes)."""
    if not is_multiprocess():
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def is_authorized(authorization: str, token: SecretStr | None) -> bool:
    """Whether an Authorization header carries the metrics token (if one is set)."""
    if token is None:
        return True
    expected = f"Bearer {token.get_secret_value()}".encode()
    return hmac.compare_digest(authorization.encode(), expected)


def start_metrics_server(host: str, port: int, token: SecretStr | None) -> None:
    """Serve the metrics on a port of their own, from a background thread
    (`python -m app serve` calls it); METRICS_TOKEN applies here too."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from prometheus_client import make_wsgi_app
    from prometheus_client.exposition import ThreadingWSGIServer

    registry: CollectorRegistry = REGISTRY
    if is_multiprocess():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    metrics_app = make_wsgi_app(registry)

    def guarded(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if not is_authorized(environ.get("HTTP_AUTHORIZATION", ""), token):
            start_response(
                "401 Unauthorized",
                [("WWW-Authenticate", "Bearer"), ("Content-Type", "text/plain")],
            )
            return [b"a valid metrics token is needed\n"]
        body: Iterable[bytes] = metrics_app(environ, start_response)
        return body

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = make_server(
        host, port, guarded, ThreadingWSGIServer, handler_class=QuietHandler
    )
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()


def process_stopped() -> None:
    """Drop this process's live gauges from the shared files."""
    if is_multiprocess():
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


def record_service_info(settings: Settings) -> None:
    INFO.labels(
        settings.service.name,
        settings.service.version,
        settings.environment.value,
        settings.service.template,
    ).set(1)


def record_checks(results: Iterable[tuple[str, bool]]) -> None:
    """The outcome of a readiness check, for the alert on readiness. (Labelled
    per check, so a process reports nothing before its first check.)"""
    for name, ok in results:
        CHECK_UP.labels(name).set(1 if ok else 0)


class RequestMetrics:
    """Counts requests; the label lookups are cached per label set."""

    def __init__(self) -> None:
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._templates: dict[int, Mapping[int, str]] = {}

    def observe(
        self, scope: Mapping[str, Any], status: int, seconds: float, root: str
    ) -> str:
        """Record one answered request; returns its route template."""
        method = scope["method"]
        if method not in METHODS:
            method = "OTHER"
        route = self.route_template(scope, root)
        key = (method, route, status // 100)
        children = self._children.get(key)
        if children is None:
            labels = (method, route, f"{status // 100}xx")
            children = (REQUESTS.labels(*labels), DURATION.labels(*labels))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)
        return route

    def route_template(self, scope: Mapping[str, Any], root: str) -> str:
        """The full template of the matched route, mount prefixes included."""
        route = scope.get("route")
        if route is not None:  # FastAPI's routes
            key, path = id(route), getattr(route, "path", None)
        elif "endpoint" in scope:  # Starlette's (/docs, /openapi.json)
            key, path = id(scope["endpoint"]), None
        else:
            return UNMATCHED
        app = scope.get("app")
        templates = self._templates.get(id(app))
        if templates is None:
            templates = self._templates[id(app)] = full_templates(app)
        template = templates.get(key, path)
        if template is None:
            return UNMATCHED
        mounted: str = scope.get("root_path", "")[len(root) :]
        return mounted + template


def full_templates(app: Any) -> dict[int, str]:
    """Route (or endpoint) id -> the route's full path template.

    FastAPI puts the route object in the scope, and a route of a router
    included in a router knows only its own short path (`/{item_id}`);
    Starlette's routes put only their endpoint there.
    """
    templates: dict[int, str] = {}
    for entry in route_table(app):
        templates.setdefault(id(entry.route), entry.template)
        templates.setdefault(id(entry.endpoint), entry.template)
    return templates


def count_from_zero(app: Any) -> None:
    """Create the request counters of every route the app has now, at 0."""
    for entry in route_table(app):
        if entry.template in UNTRACED_PATHS:
            continue
        for method in entry.methods & METHODS:
            for status in STATUS_CLASSES:
                REQUESTS.labels(method, entry.template, status)


def instrument_pool(engine: AsyncEngine, settings: Settings) -> None:
    """Keep the pool gauges current from the pool's own events."""
    pool = engine.sync_engine.pool
    size = settings.database.pool_size
    POOL_SIZE.inc(size)
    POOL_MAX.inc(size + settings.database.max_overflow)

    def opened(*_: Any) -> None:
        POOL_OPEN.inc()

    def closed(*_: Any) -> None:
        POOL_OPEN.dec()

    def checked_out(*_: Any) -> None:
        POOL_IN_USE.inc()

    def checked_in(*_: Any) -> None:
        POOL_IN_USE.dec()

    event.listen(pool, "connect", opened)
    event.listen(pool, "close", closed)
    event.listen(pool, "detach", closed)
    event.listen(pool, "checkout", checked_out)
    event.listen(pool, "checkin", checked_in)


def release_pool(settings: Settings) -> None:
    """After the engine's disposal: this pool no longer counts."""
    POOL_SIZE.dec(settings.database.pool_size)
    POOL_MAX.dec(settings.database.pool_size + settings.database.max_overflow)


router = APIRouter(include_in_schema=False)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus exposition; with METRICS_TOKEN set, only for its bearer."""
    token = state_of(request)["settings"].metrics.token
    if not is_authorized(request.headers.get("authorization", ""), token):
        raise NotAuthenticated("a valid metrics token is needed")
    return Response(exposition(), media_type=CONTENT_TYPE_LATEST)
