"""Request ids: accept a well-formed incoming X-Request-ID or make one.

The id is returned in the response, bound to every log line written while the
request runs, and kept in `scope["state"]` for the error handlers. Unhandled
exceptions are caught here, logged once with the id, and answered with a
problem+json 500 that reveals nothing internal.
"""

from __future__ import annotations

import random
import re

from loguru import logger
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import internal_error_response

HEADER = b"x-request-id"
VALID_ID = re.compile(rb"[A-Za-z0-9._:-]{8,128}")


def new_request_id() -> str:
    """A random 128-bit hex id (request ids need uniqueness, not secrecy)."""
    return f"{random.getrandbits(128):032x}"


def incoming_request_id(scope: Scope) -> str | None:
    """The caller's X-Request-ID if it is well formed, else None."""
    for name, value in scope["headers"]:
        if name == HEADER:
            return value.decode("ascii") if VALID_ID.fullmatch(value) else None
    return None


class RequestIdMiddleware:
    """Pure ASGI middleware; non-HTTP scopes pass straight through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_id = incoming_request_id(scope) or new_request_id()
        # A copy: servers share the lifespan state dict between requests.
        scope["state"] = {**scope.get("state", {}), "request_id": request_id}
        header = (HEADER, request_id.encode("ascii"))
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        with logger.contextualize(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            except Exception:
                logger.exception("unhandled error in {path}", path=scope["path"])
                if response_started:
                    raise
                response = internal_error_response(request_id)
                await response(scope, receive, send_with_id)
