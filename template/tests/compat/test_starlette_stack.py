"""Starlette and opentelemetry-instrumentation-fastapi: how an app's
middleware stack is built and what the instrumentation makes of it, which
app/compat/starlette_stack.py relies on to put the sampling gate around the
instrumentation. A failure here after a bump of either means the gate would
no longer find its place (tracing would still work, at the full cost)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from loguru import logger
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.trace import TracerProvider
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from app.compat.starlette_stack import wrap_instrumentation

pytestmark = pytest.mark.anyio


def plain_app() -> FastAPI:
    app = FastAPI()

    @app.get("/thing")
    async def thing() -> dict[str, str]:
        return {"thing": "yes"}

    return app


def instrumented_app() -> FastAPI:
    app = plain_app()
    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=TracerProvider(), meter_provider=NoOpMeterProvider()
    )
    return app


class Around:
    """A layer that counts the requests it passes on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.calls = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls += 1
        await self.app(scope, receive, send)


async def get(app: FastAPI, path: str) -> int:
    transport = ASGITransport(app=app)
    async with AsyncClient(transport=transport, base_url="http://test") as client:
        return (await client.get(path)).status_code


@pytest.fixture
def warnings() -> Iterator[list[str]]:
    said: list[str] = []
    sink = logger.add(lambda message: said.append(str(message)), level="WARNING")
    yield said
    logger.remove(sink)


async def test_starlette_builds_the_stack_on_the_first_call_with_the_app_s_builder() -> (
    None
):
    app = plain_app()
    built = []
    build = app.build_middleware_stack

    def counted() -> ASGIApp:
        built.append(True)
        return build()

    app.build_middleware_stack = counted  # type: ignore[method-assign]
    assert app.middleware_stack is None

    assert await get(app, "/thing") == 200
    assert await get(app, "/thing") == 200
    assert built == [True]


def test_instrumented_the_stack_is_server_errors_then_otel_then_the_app_s_own() -> None:
    stack = instrumented_app().build_middleware_stack()

    assert isinstance(stack, ServerErrorMiddleware)
    assert isinstance(stack.app, OpenTelemetryMiddleware)
    # What a request that skips the instrumentation reaches: errors still
    # answered 500 by a ServerErrorMiddleware.
    assert isinstance(getattr(stack.app, "app", None), ServerErrorMiddleware)


async def test_the_wrap_takes_the_instrumentation_s_place(
    warnings: list[str],
) -> None:
    app = instrumented_app()
    layers: list[Around] = []

    def around(instrumented: OpenTelemetryMiddleware) -> ASGIApp:
        layers.append(Around(instrumented))
        return layers[-1]

    wrap_instrumentation(app, around)

    assert await get(app, "/thing") == 200
    [layer] = layers
    assert layer.calls == 1
    assert isinstance(layer.app, OpenTelemetryMiddleware)
    assert warnings == []


async def test_a_stack_of_another_shape_is_left_as_it_is_and_said(
    warnings: list[str],
) -> None:
    app = plain_app()  # not instrumented: no OpenTelemetryMiddleware to find
    wrap_instrumentation(app, Around)

    assert await get(app, "/thing") == 200
    assert not isinstance(getattr(app.middleware_stack, "app", None), Around)
    [warning] = warnings
    assert "app/compat/starlette_stack.py" in warning
