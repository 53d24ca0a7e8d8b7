"""Request ids: accept a well-formed incoming X-Request-ID or make one.

`ObservabilityMiddleware` (app.middleware.observability) applies them: the id
is returned in the response, bound to every log line written while the
request runs, and kept in `scope["state"]` for the error handlers.
"""

from __future__ import annotations

import random
import re

from starlette.types import Scope

HEADER = b"x-request-id"
VALID_ID = re.compile(rb"[A-Za-z0-9._:-]{8,128}")


def new_request_id() -> str:
    """A random 128-bit hex id (request ids need uniqueness, not secrecy)."""
    return f"{random.getrandbits(128):032x}"  # nosec B311


def incoming_request_id(scope: Scope) -> str | None:
    """The caller's X-Request-ID if it is well formed, else None."""
    for name, value in scope["headers"]:
        if name == HEADER:
            return value.decode("ascii") if VALID_ID.fullmatch(value) else None
    return None
