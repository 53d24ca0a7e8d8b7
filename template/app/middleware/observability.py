"""What every request passes through once: its id, metrics and access line.

One pure ASGI middleware instead of three: each layer costs a call chain and
a wrapped `send`, and this one is on every request's path. It
- takes a well-formed incoming X-Request-ID or makes one, returns it, binds it
  to every log line of the request and keeps it in `scope["state"]`;
- counts the request by route template and status class (app.metrics) and
  writes one access line (app.logging), except for probes and /metrics;
- catches unhandled exceptions, logs them once with the id, marks the trace
  span failed and answers a problem+json 500 that reveals nothing internal.
"""

from __future__ import annotations

import time

from loguru import logger
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import internal_error_response
from app.logging import REQUEST_FIELDS, AccessLog
from app.metrics import IN_PROGRESS, RequestMetrics
from app.middleware.request_id import HEADER, incoming_request_id, new_request_id
from app.probes import UNTRACED_PATHS
from app.telemetry import record_exception


class ObservabilityMiddleware:
    """Pure ASGI middleware; non-HTTP scopes pass straight through."""

    def __init__(self, app: ASGIApp, access_log: AccessLog | None = None) -> None:
        self.app = app
        self.metrics = RequestMetrics()
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = time.perf_counter()
        request_id = incoming_request_id(scope) or new_request_id()
        # A copy: servers share the lifespan state dict between requests.
        scope["state"] = {**scope.get("state", {}), "request_id": request_id}
        root = scope.get("root_path", "")
        header = (HEADER, request_id.encode("ascii"))
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        # Probes and /metrics: answered, but neither counted, logged nor traced.
        quiet = scope["path"] in UNTRACED_PATHS
        if not quiet:
            IN_PROGRESS.inc()
        # Every log line of the request carries its id (app.logging).
        fields = REQUEST_FIELDS.set({"request_id": request_id})
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as error:
            logger.exception("unhandled error in {path}", path=scope["path"])
            record_exception(error)
            if response_started:
                raise
            response = internal_error_response(request_id)
            await response(scope, receive, send_with_id)
        finally:
            REQUEST_FIELDS.reset(fields)
            if not quiet:
                IN_PROGRESS.dec()
                seconds = time.perf_counter() - started
                route = self.metrics.observe(scope, status, seconds, root)
                if self.access_log is not None:
                    self.access_log.write(scope, request_id, route, status, seconds)
