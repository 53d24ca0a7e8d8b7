"""opentelemetry-instrumentation-sqlalchemy: the engine tracer's private
parts that app/compat/sqlalchemy_tracing.py relies on (its docstring says
what and why). A failure here after a bump of that library, or of
SQLAlchemy, means the override no longer does what it did."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import StatusCode
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from app.compat.sqlalchemy_tracing import PARAMETERS, STATEMENT, trace_engine


@pytest.fixture
def engine() -> Iterator[Engine]:
    engine = create_engine("sqlite://")
    yield engine
    engine.dispose()


@pytest.fixture
def exported() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exported: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    return provider


def test_an_engine_tracer_is_made_from_a_tracer_an_engine_and_a_counter() -> None:
    parameters = list(inspect.signature(EngineTracer).parameters)
    assert parameters[:3] == ["tracer", "engine", "connections_usage"]


def test_before_cur_exec_takes_the_statement_and_parameters_where_they_are_read() -> (
    None
):
    parameters = list(inspect.signature(EngineTracer._before_cur_exec).parameters)
    assert len(parameters) == 7  # self, then before_cursor_execute's six
    assert parameters[1 + STATEMENT] == "statement"
    assert parameters[1 + PARAMETERS] == "params"


def test_before_cursor_execute_calls_a_subclass_s_override_and_runs_what_it_returns(
    engine: Engine,
) -> None:
    class Rewriting(EngineTracer):
        def _before_cur_exec(self, *args: Any) -> Any:
            statement, parameters = super()._before_cur_exec(  # type: ignore[no-untyped-call]
                *args
            )
            return statement.replace("41", "42"), parameters

    tracer = TracerProvider().get_tracer("test")
    usage = NoOpMeterProvider().get_meter("test").create_up_down_counter("usage")
    Rewriting(tracer, engine, usage)  # type: ignore[no-untyped-call]

    with engine.connect() as connection:
        assert connection.execute(text("SELECT 41")).scalar() == 42


def test_a_statement_in_a_recorded_span_has_its_span(
    engine: Engine, provider: TracerProvider, exported: InMemorySpanExporter
) -> None:
    trace_engine(provider, engine)
    request = provider.get_tracer("test").start_as_current_span("request")
    with request, engine.connect() as connection:
        connection.execute(text("SELECT 1"))

    assert [span.name for span in exported.get_finished_spans()] == [
        "SELECT",
        "request",
    ]


def test_a_statement_outside_a_recorded_span_has_none_and_runs(
    engine: Engine, provider: TracerProvider, exported: InMemorySpanExporter
) -> None:
    trace_engine(provider, engine)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT 1")).scalar() == 1
        # The error listener finds no span of this statement's to end.
        with pytest.raises(OperationalError):
            connection.execute(text("SELECT FROM nowhere"))

    assert exported.get_finished_spans() == ()


def test_a_failed_statement_in_a_recorded_span_marks_its_span(
    engine: Engine, provider: TracerProvider, exported: InMemorySpanExporter
) -> None:
    trace_engine(provider, engine)
    request = provider.get_tracer("test").start_as_current_span("request")
    with request, engine.connect() as connection, pytest.raises(OperationalError):
        connection.execute(text("SELECT FROM nowhere"))

    statement = exported.get_finished_spans()[0]
    assert statement.status.status_code is StatusCode.ERROR
