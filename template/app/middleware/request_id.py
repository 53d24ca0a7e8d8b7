"""Request ids: accept a well-formed incoming X-Request-ID or make one.

`ObservabilityMiddleware` (app.middleware.observability) applies them: the id
is returned in the response, bound to every log line written while the
request runs, and kept in `scope["state"]` for the error handlers.
"""

from __future__ import annotations

import random
import re
import warnings
from typing import Any

from starlette.types import Scope

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


def __getattr__(name: str) -> Any:
    # Renamed in template release 0.4.0; the old name works for one release.
    if name == "RequestIdMiddleware":
        warnings.warn(
            "app.middleware.request_id.RequestIdMiddleware is now"
            " app.middleware.observability.ObservabilityMiddleware",
            DeprecationWarning,
            stacklevel=2,
        )
        from app.middleware.observability import ObservabilityMiddleware

        return ObservabilityMiddleware
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
