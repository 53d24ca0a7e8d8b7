"""A layer put around the FastAPI instrumentation, inside the app's
middleware stack (the sampling gate, app/middleware/sampling_gate.py).

No public API places a middleware outside one that
`FastAPIInstrumentor.instrument_app` adds. Relied on (tests/compat/
test_starlette_stack.py pins it):
- Starlette builds an app's stack on its first call, with
  `self.build_middleware_stack()`: a replacement set on the instance is the
  one used (opentelemetry-instrumentation-fastapi sets one too);
- after `instrument_app`, that stack is a `ServerErrorMiddleware` whose
  `.app` is the instrumentation's `OpenTelemetryMiddleware`, whose `.app` is
  the app's own stack (with a `ServerErrorMiddleware` of its own, so a
  request that goes around the instrumentation still gets a 500 answer).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from loguru import logger
from starlette.types import ASGIApp

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware


def wrap_instrumentation(
    app: FastAPI, wrap: Callable[[OpenTelemetryMiddleware], ASGIApp]
) -> None:
    """When `app` builds its stack (instrumented already), put `wrap(it)` in
    place of the instrumentation's middleware."""
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    build_instrumented = app.build_middleware_stack

    def build_wrapped() -> ASGIApp:
        stack = build_instrumented()
        instrumented = getattr(stack, "app", None)
        if isinstance(instrumented, OpenTelemetryMiddleware):
            stack.app = wrap(instrumented)  # type: ignore[attr-defined]
        else:
            logger.warning(
                "the middleware stack has changed shape (Starlette or"
                " opentelemetry-instrumentation-fastapi): every request goes"
                " through the instrumentation; see app/compat/starlette_stack.py"
            )
        return stack

    app.build_middleware_stack = build_wrapped  # type: ignore[method-assign]
