"""Tracing: spans exported over OTLP, the sampling gate, log correlation."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from loguru import logger
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

from app.main import create_app
from app.middleware import sampling_gate
from app.settings import Settings
from tests.fixtures.client import client_for
from tests.fixtures.identity import user_headers
from tests.fixtures.network import downstream_server
from tests.fixtures.otlp import Received, grpc_collector, http_collector
from tests.fixtures.probe import NOTES, notes_app
from tests.fixtures.settings import make_settings

pytestmark = pytest.mark.anyio
PARENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"  # pragma: allowlist secret
PARENT_SPAN = "00f067aa0ba902b7"


def traced_settings(
    tmp_path: Path, endpoint: str, ratio: float, **otel: Any
) -> Settings:
    url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    return make_settings(
        url,
        database={"dsn": url, "migrate_on_start": True},
        log={"format": "json", "level": "INFO"},
        otel={"exporter_otlp_endpoint": endpoint, "traces_sampler_arg": ratio, **otel},
    )


def access_lines(output: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return [line for line in lines if line["logger"] == "access"]


def with_routes(app: FastAPI) -> FastAPI:
    @app.get("/trivial")
    async def trivial() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/logs")
    async def logs() -> None:
        logger.info("inside a span")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("kaboom")

    return app


@pytest.fixture
def collector() -> Iterator[tuple[str, Received]]:
    with http_collector() as endpoint_and_spans:
        yield endpoint_and_spans


@pytest.fixture
def received(collector: tuple[str, Received]) -> Received:
    return collector[1]


@pytest.fixture
def traced(
    tmp_path: Path, collector: tuple[str, Received]
) -> Callable[[float], FastAPI]:
    """Builds the app (with test routes) exporting to the local collector."""

    def build(ratio: float) -> FastAPI:
        settings = traced_settings(tmp_path, collector[0], ratio)
        return with_routes(create_app(settings))

    return build


async def get(
    app: FastAPI, path: str, times: int = 1, headers: dict[str, str] | None = None
) -> int:
    """GET `path` `times` times through the app's lifespan; the last status."""
    status = 0
    async with client_for(app) as client:
        for _ in range(times):
            status = (await client.get(path, headers=headers)).status_code
    return status


async def test_a_sampled_request_is_exported_with_its_database_span(
    tmp_path: Path,
    collector: tuple[str, Received],
    capsys: pytest.CaptureFixture[str],
) -> None:
    endpoint, received = collector
    settings = traced_settings(
        tmp_path, endpoint, 1.0, exporter_otlp_headers="x-team-token=a%20b, x-b=c"
    )
    async with client_for(
        notes_app(settings), headers=user_headers(settings)
    ) as client:
        assert (await client.get(NOTES)).status_code == 200
        for probe in ("/live", "/ready", "/health", "/metrics"):
            await client.get(probe)

    [server] = received.named(f"GET {NOTES}")
    assert server.kind == Span.SPAN_KIND_SERVER
    in_trace = [s for s in received.spans if s.trace_id == server.trace_id]
    statements = [s for s in in_trace if s.kind == Span.SPAN_KIND_CLIENT]
    assert statements, "the query is a child span"
    assert all(s.parent_span_id for s in statements)
    assert not [s for s in received.spans if s.name.endswith(("send", "receive"))]
    assert not [
        s
        for s in received.spans
        if s.kind == Span.SPAN_KIND_SERVER and s.name != f"GET {NOTES}"
    ], "probes and /metrics are not traced"
    assert all(h.get("x-team-token") == "a b" for h in received.headers)
    assert all(h.get("x-b") == "c" for h in received.headers)
    [line] = access_lines(capsys.readouterr().out)
    assert line["trace_id"] == server.trace_id.hex()
    assert line["span_id"] == server.span_id.hex()


async def test_log_lines_inside_a_span_carry_its_ids(
    traced: Callable[[float], FastAPI],
    received: Received,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await get(traced(1.0), "/logs")

    [span] = received.named("GET /logs")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    [line] = [line for line in lines if line["message"] == "inside a span"]
    assert line["trace_id"] == span.trace_id.hex()
    assert line["span_id"] == span.span_id.hex()
    assert line["request_id"] != "-"


async def test_an_unhandled_error_marks_the_span_failed(
    traced: Callable[[float], FastAPI],
    received: Received,
) -> None:
    assert await get(traced(1.0), "/boom") == 500

    [span] = received.named("GET /boom")
    assert span.status.code == Status.STATUS_CODE_ERROR
    assert [e for e in span.events if e.name == "exception"]


async def test_unsampled_requests_are_not_exported_but_logs_keep_a_trace_id(
    traced: Callable[[float], FastAPI],
    received: Received,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await get(traced(0.0), "/trivial", times=20)

    assert received.spans == []
    lines = access_lines(capsys.readouterr().out)
    assert len(lines) == 20
    assert len({line["trace_id"] for line in lines}) == 20
    assert all(len(line["trace_id"]) == 32 for line in lines)


async def test_a_sampled_incoming_parent_is_continued(
    traced: Callable[[float], FastAPI],
    received: Received,
) -> None:
    parent = f"00-{PARENT_TRACE}-{PARENT_SPAN}-01"
    await get(traced(0.0), "/trivial", headers={"traceparent": parent})

    [span] = received.named("GET /trivial")
    assert span.trace_id.hex() == PARENT_TRACE
    assert span.parent_span_id.hex() == PARENT_SPAN


async def test_an_unsampled_incoming_parent_is_respected(
    traced: Callable[[float], FastAPI],
    received: Received,
    capsys: pytest.CaptureFixture[str],
) -> None:
    parent = f"00-{PARENT_TRACE}-{PARENT_SPAN}-00"
    await get(traced(1.0), "/trivial", headers={"traceparent": parent})

    assert received.named("GET /trivial") == []
    [line] = access_lines(capsys.readouterr().out)
    assert line["trace_id"] == PARENT_TRACE


async def test_the_gate_and_the_sdk_sample_the_same_requests(
    traced: Callable[[float], FastAPI],
    received: Received,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ratio = 0.5
    await get(traced(ratio), "/trivial", times=200)

    bound = TraceIdRatioBased.get_bound_for_rate(ratio)
    lines = access_lines(capsys.readouterr().out)
    chosen = {
        line["trace_id"]
        for line in lines
        if int(line["trace_id"], 16) & ((1 << 64) - 1) < bound
    }
    exported = {span.trace_id.hex() for span in received.named("GET /trivial")}
    assert 0 < len(exported) < 200
    assert exported == chosen


class DrawnIds:
    """Stands in for the gate's `random`: 128-bit draws come from a list."""

    def __init__(self, trace_ids: list[int]) -> None:
        self.trace_ids = trace_ids

    def getrandbits(self, bits: int) -> int:
        return self.trace_ids.pop(0) if bits == 128 else 0x1234


async def test_the_sdk_keeps_the_trace_id_the_gate_sampled_on(
    tmp_path: Path,
    collector: tuple[str, Received],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    endpoint, received = collector
    app = with_routes(create_app(traced_settings(tmp_path, endpoint, 0.5)))
    kept = (0xABC << 64) | 1  # low 64 bits under the 50 % bound: sampled
    dropped = (0xDEF << 64) | ((1 << 64) - 1)  # above it: not sampled
    monkeypatch.setattr(sampling_gate, "random", DrawnIds([kept, dropped]))
    async with client_for(app) as client:
        await client.get("/trivial")
        await client.get("/trivial")

    [span] = received.named("GET /trivial")
    assert span.trace_id.hex() == f"{kept:032x}"
    lines = access_lines(capsys.readouterr().out)
    assert [line["trace_id"] for line in lines] == [f"{kept:032x}", f"{dropped:032x}"]


async def test_a_request_with_tracestate_goes_through_the_instrumentation(
    traced: Callable[[float], FastAPI],
    received: Received,
) -> None:
    headers = {
        "traceparent": f"00-{PARENT_TRACE}-{PARENT_SPAN}-01",
        "tracestate": "vendor=abc",
    }
    await get(traced(0.0), "/trivial", headers=headers)

    [span] = received.named("GET /trivial")
    assert span.trace_id.hex() == PARENT_TRACE
    assert span.trace_state == "vendor=abc"


async def test_spans_can_go_over_grpc(tmp_path: Path) -> None:
    with grpc_collector() as (endpoint, received):
        settings = traced_settings(
            tmp_path, endpoint, 1.0, exporter_otlp_protocol="grpc"
        )
        app = with_routes(create_app(settings))
        async with client_for(app) as client:
            await client.get("/trivial")

        assert len(received.named("GET /trivial")) == 1


@pytest.fixture
def downstream() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """Another HTTP service on loopback; records the headers it receives."""
    with downstream_server() as found:
        yield found


async def test_outgoing_httpx_calls_carry_the_trace(
    tmp_path: Path,
    collector: tuple[str, Received],
    downstream: tuple[str, list[dict[str, str]]],
) -> None:
    endpoint, received = collector
    url, seen = downstream
    app = create_app(traced_settings(tmp_path, endpoint, 1.0))

    @app.get("/call")
    async def call() -> None:
        async with httpx.AsyncClient() as outgoing:
            await outgoing.get(url)

    async with client_for(app) as client:
        await client.get("/call")

    [server] = received.named("GET /call")
    [headers] = seen
    assert headers["traceparent"].split("-")[1] == server.trace_id.hex()
    client_spans = [
        s
        for s in received.spans
        if s.trace_id == server.trace_id and s.kind == Span.SPAN_KIND_CLIENT
    ]
    assert [s for s in client_spans if s.name == "GET"]


def test_tracing_is_off_without_an_endpoint(settings: Settings) -> None:
    assert not settings.otel.enabled
    assert not make_settings(
        settings.database.url,
        otel={"exporter_otlp_endpoint": "http://collector:4318", "sdk_disabled": True},
    ).otel.enabled


async def test_without_tracing_logs_carry_no_trace_id(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    json_settings = make_settings(
        settings.database.url, log={"format": "json", "level": "INFO"}
    )
    app = with_routes(create_app(json_settings))
    async with client_for(app) as client:
        await client.get("/trivial")

    [line] = access_lines(capsys.readouterr().out)
    assert "trace_id" not in line
