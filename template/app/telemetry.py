"""Tracing with OpenTelemetry, configured from the standard OTEL_* variables.

Off unless OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) is set. Spans
go to an OTLP collector over HTTP or gRPC, sampled by a parent-based ratio
sampler (OTEL_TRACES_SAMPLER_ARG). Requests are traced by the official
FastAPI instrumentation, database statements by the SQLAlchemy one and
outgoing calls by the httpx one.

Why there is a gate: the FastAPI instrumentation costs about as much as the
whole rest of the stack even for requests its sampler then drops. So a
`SamplingGate` in front of it takes the sampler's decision first, exactly as
`ParentBased(TraceIdRatioBased)` would, and only sampled requests go through
the instrumentation. The others skip it with a non-recording span context
attached, so their log lines and outgoing calls still carry the trace id.
The gate steps aside (every request goes through the instrumentation) when a
request carries `tracestate` or `baggage`, an unreadable `traceparent`, or
when OTEL_PROPAGATORS names other propagators than the defaults.
"""

from __future__ import annotations

import importlib.util
import os
import random
import re
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from starlette.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.sdk.trace.id_generator import IdGenerator
    from sqlalchemy.ext.asyncio import AsyncEngine

    from app.settings import OtelSettings, Settings

# The SDK and the instrumentations are imported only once tracing is on
# (about 0.1 s of start-up otherwise spent for nothing).

# Requests that are never traced (nor counted in the request metrics).
UNTRACED_PATHS = frozenset({"/live", "/ready", "/health", "/metrics"})
TRACEPARENT = re.compile(rb"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
LOW_64_BITS = (1 << 64) - 1
DEFAULT_PROPAGATORS = {"tracecontext", "baggage"}

# The trace id the gate drew for a request it sends through the instrumentation.
_gate_trace_id: ContextVar[int | None] = ContextVar("gate_trace_id", default=None)
# The provider of the running app or worker; None while tracing is off.
_active: TracerProvider | None = None


def gate_id_generator() -> IdGenerator:
    """Ids as usual, but a root span takes the trace id the gate sampled on."""
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class GateIdGenerator(RandomIdGenerator):
        def generate_trace_id(self) -> int:
            trace_id = _gate_trace_id.get()
            if trace_id is None:
                return super().generate_trace_id()
            _gate_trace_id.set(None)
            return trace_id

    return GateIdGenerator()


def sampling_ratio(settings: OtelSettings) -> float:
    if settings.traces_sampler == "parentbased_always_on":
        return 1.0
    if settings.traces_sampler == "parentbased_always_off":
        return 0.0
    return settings.traces_sampler_arg


def create_exporter(settings: OtelSettings) -> SpanExporter:
    """The OTLP exporter for OTEL_EXPORTER_OTLP_PROTOCOL (imported when used)."""
    from opentelemetry.util.re import parse_env_headers

    # The format of OTEL_EXPORTER_OTLP_HEADERS: k=v pairs, values URL-encoded.
    headers = dict(
        parse_env_headers(
            settings.exporter_otlp_headers.get_secret_value(), liberal=True
        )
    )
    base = (settings.exporter_otlp_endpoint or "").rstrip("/")
    if settings.exporter_otlp_protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcSpanExporter,
        )

        # TLS follows the scheme (http:// is plain) or OTEL_EXPORTER_OTLP_INSECURE.
        return GrpcSpanExporter(
            endpoint=settings.exporter_otlp_traces_endpoint or base,
            headers=headers or None,
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpSpanExporter,
    )

    return HttpSpanExporter(
        endpoint=settings.exporter_otlp_traces_endpoint or f"{base}/v1/traces",
        headers=headers or None,
    )


class Tracing:
    """The tracer provider of one app (or worker) and what it instruments."""

    def __init__(self, settings: Settings) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

        otel = settings.otel
        resource = Resource.create(
            {
                "service.name": otel.service_name or settings.service.name,
                "service.version": settings.service.version,
                "deployment.environment.name": settings.environment.value,
            }
        )
        self.ratio = sampling_ratio(otel)
        self.provider = TracerProvider(
            resource=resource,
            sampler=ParentBased(TraceIdRatioBased(self.ratio)),
            id_generator=gate_id_generator(),
        )
        self.exporter = create_exporter(otel)
        propagators = os.environ.get("OTEL_PROPAGATORS")
        self.gate_is_exact = propagators is None or set(
            p.strip() for p in propagators.split(",")
        ) <= (DEFAULT_PROPAGATORS | {""})

    def instrument_app(self, app: FastAPI) -> None:
        """The official FastAPI instrumentation, behind the sampling gate."""
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
        from opentelemetry.metrics import NoOpMeterProvider
        from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=self.provider,
            # Request metrics come from Prometheus (app.metrics), not OTel.
            meter_provider=NoOpMeterProvider(),
            excluded_urls=r"^[a-z]+://[^/]+/(?:live|ready|health|metrics)$",
            exclude_spans=["receive", "send"],
        )
        if not self.gate_is_exact:
            return
        build_instrumented = app.build_middleware_stack
        ratio_bound = TraceIdRatioBased.get_bound_for_rate(self.ratio)

        def build_with_gate() -> ASGIApp:
            # The instrumented stack is ServerErrorMiddleware(OpenTelemetry-
            # Middleware(the app's own stack)); the gate goes around the
            # instrumentation, so unsampled requests go straight to the app.
            stack = build_instrumented()
            instrumented = getattr(stack, "app", None)
            if isinstance(instrumented, OpenTelemetryMiddleware):
                stack.app = SamplingGate(  # type: ignore[attr-defined]
                    traced=instrumented, untraced=instrumented.app, bound=ratio_bound
                )
            return stack

        app.build_middleware_stack = build_with_gate  # type: ignore[method-assign]

    def start(self) -> None:
        """Start exporting; make this provider the active one (for tasks and
        `tracer()`); instrument outgoing httpx calls."""
        global _active
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        # The processor's export thread starts here, not when the app is built.
        self.provider.add_span_processor(BatchSpanProcessor(self.exporter))
        _active = self.provider
        if importlib.util.find_spec("httpx") is None:
            return  # no httpx installed: no outgoing httpx calls to trace
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

        instrumentor = HTTPXClientInstrumentor()
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
        instrumentor.instrument(tracer_provider=self.provider)

    def shutdown(self) -> None:
        """Export what is buffered and stop."""
        global _active
        if _active is self.provider:
            _active = None
            if importlib.util.find_spec("httpx") is not None:
                from opentelemetry.instrumentation.httpx import (
                    HTTPXClientInstrumentor,
                )

                HTTPXClientInstrumentor().uninstrument()
        self.provider.shutdown()


def instrument_engine(engine: AsyncEngine) -> None:
    """Spans for this engine's statements run inside a recorded span."""
    provider = _active
    if provider is None:
        return
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    from opentelemetry.metrics import NoOpMeterProvider

    class RecordedOnly(EngineTracer):
        """The official engine tracer, skipped when nothing would be recorded
        (an unsampled request, a probe): it reads the connection's details
        for every statement before the sampler has its say."""

        def _before_cur_exec(self, *args: Any) -> Any:
            if not trace.get_current_span().is_recording():
                statement, parameters = args[2], args[3]
                return statement, parameters
            return super()._before_cur_exec(*args)  # type: ignore[no-untyped-call]

    # SQLAlchemyInstrumentor().instrument() may run once per process and
    # patches create_engine; an engine tracer instruments just this engine
    # (the API's and the worker's each get one).
    usage = (
        NoOpMeterProvider()
        .get_meter("sqlalchemy")
        .create_up_down_counter("db.client.connections.usage")
    )
    tracer = provider.get_tracer("opentelemetry.instrumentation.sqlalchemy")
    RecordedOnly(tracer, engine.sync_engine, usage)  # type: ignore[no-untyped-call]


def tracer(name: str) -> trace.Tracer:
    """A tracer of the active provider, or one that records nothing."""
    provider = _active
    return provider.get_tracer(name) if provider else trace.NoOpTracer()


class NeedsInstrumentation(Exception):
    """The request's trace context is one only the instrumentation can read."""


def read_parent(scope: Scope) -> tuple[int, bool] | None:
    """The incoming W3C parent as (trace id, sampled), or None without one."""
    parent = None
    for name, value in scope["headers"]:
        if name == b"traceparent":
            match = TRACEPARENT.fullmatch(value)
            if match is None or int(match[1], 16) == 0 or int(match[2], 16) == 0:
                raise NeedsInstrumentation
            parent = (int(match[1], 16), bool(int(match[3], 16) & 1))
        elif name in (b"tracestate", b"baggage"):
            raise NeedsInstrumentation
    return parent


class SamplingGate:
    """Pure ASGI: sampled requests through the instrumentation, others around it."""

    def __init__(self, traced: ASGIApp, untraced: ASGIApp, bound: int) -> None:
        self.traced = traced
        self.untraced = untraced
        self.bound = bound

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNTRACED_PATHS:
            await self.untraced(scope, receive, send)
            return
        try:
            parent = read_parent(scope)
        except NeedsInstrumentation:
            await self.traced(scope, receive, send)
            return
        if parent is None:
            # Trace ids need uniqueness, not secrecy (the SDK draws them so too).
            trace_id = random.getrandbits(128) or 1  # nosec B311
            sampled = (trace_id & LOW_64_BITS) < self.bound
            own_trace_id: int | None = trace_id
        else:
            trace_id, sampled = parent
            own_trace_id = None
        if sampled:
            token = _gate_trace_id.set(own_trace_id)
            try:
                await self.traced(scope, receive, send)
            finally:
                _gate_trace_id.reset(token)
            return
        span = NonRecordingSpan(
            SpanContext(
                trace_id,
                random.getrandbits(64) or 1,  # nosec B311
                is_remote=False,
                trace_flags=TraceFlags(TraceFlags.DEFAULT),
            )
        )
        attached = otel_context.attach(trace.set_span_in_context(span))
        try:
            await self.untraced(scope, receive, send)
        finally:
            otel_context.detach(attached)


def record_exception(error: BaseException, span: trace.Span | None = None) -> None:
    """Mark the span (by default the current one) failed with this error."""
    span = span or trace.get_current_span()
    if span.is_recording():
        span.record_exception(error)
        span.set_status(trace.Status(trace.StatusCode.ERROR, type(error).__name__))


def inject() -> dict[str, str]:
    """The current trace context as headers, for a task message."""
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    if trace.get_current_span().get_span_context().is_valid:
        propagate.inject(carrier)
    return carrier


def extract(carrier: dict[str, Any] | None) -> otel_context.Context:
    from opentelemetry import propagate

    return propagate.extract(carrier or {})
