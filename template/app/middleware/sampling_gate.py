"""The sampler's decision taken before the FastAPI instrumentation, which
costs about as much as the whole rest of the stack even for requests its
sampler then drops.

With tracing on, `SamplingGate` stands in front of the official FastAPI
instrumentation (app/telemetry.py puts it there) and decides exactly as
`ParentBased(TraceIdRatioBased)` would: an incoming `traceparent`'s sampled
flag wins; otherwise it draws the trace id and keeps it if the id's low 64
bits are under the ratio's bound. Sampled requests go through the
instrumentation, and the provider's id generator (`gate_id_generator`) hands
the SDK the trace id drawn here, so both agree. The others skip it with a
non-recording span context attached, so their log lines and outgoing calls
still carry the trace id. A request with `tracestate`, `baggage` or an
unreadable `traceparent` goes through the instrumentation, which reads them.
"""

from __future__ import annotations

import random
import re
from contextvars import ContextVar
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from starlette.types import ASGIApp, Receive, Scope, Send

from app.probes import UNTRACED_PATHS

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.id_generator import IdGenerator

TRACEPARENT = re.compile(rb"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
LOW_64_BITS = (1 << 64) - 1

# The trace id the gate drew for a request it sends through the instrumentation.
_gate_trace_id: ContextVar[int | None] = ContextVar("gate_trace_id", default=None)


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
