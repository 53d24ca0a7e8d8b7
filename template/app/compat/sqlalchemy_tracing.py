"""opentelemetry-instrumentation-sqlalchemy's engine tracer, skipped for the
statements nothing would record.

The official tracer reads the connection's details for every statement
before the sampler has its say: with tracing at 10 %, nine statements in ten
would pay for a span that is dropped. Relied on (tests/compat/
test_sqlalchemy_tracing.py pins it):
- `EngineTracer(tracer, engine, connections_usage)` in
  `opentelemetry.instrumentation.sqlalchemy.engine` instruments one engine
  (the public `SQLAlchemyInstrumentor().instrument()` may run once per
  process and patches `create_engine`; the API's and the worker's engines
  each get a tracer);
- it listens to the engine's `before_cursor_execute` with its method
  `_before_cur_exec(conn, cursor, statement, params, context, executemany)`,
  looked up on the instance (an override in a subclass is what runs), and
  with `retval=True`: it returns `(statement, params)`;
- its `after_cursor_execute` and `handle_error` listeners end a span only
  where `_before_cur_exec` left one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
from opentelemetry.metrics import NoOpMeterProvider

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

STATEMENT, PARAMETERS = 2, 3  # their places in `_before_cur_exec`'s arguments


class RecordedOnly(EngineTracer):
    """The official engine tracer, for statements run inside a recorded span
    only (not an unsampled request's, not a probe's)."""

    def _before_cur_exec(self, *args: Any) -> Any:
        if not trace.get_current_span().is_recording():
            return args[STATEMENT], args[PARAMETERS]
        return super()._before_cur_exec(*args)  # type: ignore[no-untyped-call]


def trace_engine(provider: trace.TracerProvider, engine: Engine) -> None:
    """Spans from `provider` for the statements `engine` runs in a recorded span."""
    # The tracer's connection metrics: request metrics come from Prometheus.
    usage = (
        NoOpMeterProvider()
        .get_meter("sqlalchemy")
        .create_up_down_counter("db.client.connections.usage")
    )
    tracer = provider.get_tracer("opentelemetry.instrumentation.sqlalchemy")
    RecordedOnly(tracer, engine, usage)  # type: ignore[no-untyped-call]
