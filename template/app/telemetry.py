"""Tracing with OpenTelemetry, configured from the standard OTEL_* variables.

Off unless OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) is set. Spans
go to an OTLP collector over HTTP or gRPC, sampled by a parent-based ratio
sampler (OTEL_TRACES_SAMPLER_ARG). Requests are traced by the official
FastAPI instrumentation behind a sampling gate
(app/middleware/sampling_gate.py), database statements by the SQLAlchemy
one and outgoing calls by the httpx one. The gate steps aside (every request
goes through the instrumentation) when OTEL_PROPAGATORS names other
propagators than the defaults.

Where this relies on the instrumentations' private parts, it goes through
app/compat/. The paths never traced are app/probes.py's.
"""

from __future__ import annotations

import importlib.util
import os
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from app.middleware.sampling_gate import SamplingGate, gate_id_generator
from app.probes import UNTRACED_PATHS, excluded_urls

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from sqlalchemy.ext.asyncio import AsyncEngine

    from app.settings import OtelSettings, Settings

# The SDK and the instrumentations are imported only once tracing is on
# (about 0.1 s of start-up otherwise spent for nothing).

__all__ = [
    "UNTRACED_PATHS",
    "SamplingGate",
    "Tracing",
    "active_provider",
    "extract",
    "inject",
    "instrument_engine",
    "record_exception",
    "tracer",
]

DEFAULT_PROPAGATORS = {"tracecontext", "baggage"}
# Moved to app/middleware/sampling_gate.py in 0.13.0; importable from here,
# with a DeprecationWarning, until 0.14.0.
_MOVED_TO_THE_GATE = {
    "LOW_64_BITS",
    "NeedsInstrumentation",
    "TRACEPARENT",
    "read_parent",
}

_active: TracerProvider | None = None


def active_provider() -> TracerProvider | None:
    """The provider of the running app or worker; None while tracing is off.

    Process-global, set by `Tracing.start` and cleared by `shutdown`: code
    that makes spans (`tracer()`, tasks, engines opened after start-up) has
    no app at hand to ask, and the service sets no global OpenTelemetry
    provider, which would have FastAPI trace every request a second time.
    """
    return _active


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
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
        from opentelemetry.metrics import NoOpMeterProvider
        from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

        from app.compat.starlette_stack import wrap_instrumentation

        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=self.provider,
            # Request metrics come from Prometheus (app.metrics), not OTel.
            meter_provider=NoOpMeterProvider(),
            excluded_urls=excluded_urls(),
            exclude_spans=["receive", "send"],
        )
        if not self.gate_is_exact:
            return
        bound = TraceIdRatioBased.get_bound_for_rate(self.ratio)
        # Unsampled requests go around the instrumentation, to the app's stack.
        wrap_instrumentation(
            app,
            lambda instrumented: SamplingGate(
                traced=instrumented, untraced=instrumented.app, bound=bound
            ),
        )

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
    provider = active_provider()
    if provider is None:
        return
    from app.compat.sqlalchemy_tracing import trace_engine

    trace_engine(provider, engine.sync_engine)


def tracer(name: str) -> trace.Tracer:
    """A tracer of the active provider, or one that records nothing."""
    provider = active_provider()
    return provider.get_tracer(name) if provider else trace.NoOpTracer()


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
    """The trace context a task message carries (`inject`'s headers)."""
    from opentelemetry import propagate

    return propagate.extract(carrier or {})


def __getattr__(name: str) -> Any:
    if name in _MOVED_TO_THE_GATE:
        import warnings

        from app.middleware import sampling_gate

        warnings.warn(
            f"app.telemetry.{name} moved to app.middleware.sampling_gate",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(sampling_gate, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
