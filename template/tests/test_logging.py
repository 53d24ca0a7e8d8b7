"""Log lines carry service, environment, version and the request id."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import SessionDep
from app.logging import AccessLog, configure_logging
from app.main import create_app
from app.settings import Settings
from tests.fixtures.client import client_for
from tests.fixtures.identity import user_headers
from tests.fixtures.probe import NOTE_ROUTE, NOTES, notes_app
from tests.fixtures.settings import make_settings

pytestmark = pytest.mark.anyio


def json_settings(settings: Settings) -> Settings:
    return make_settings(settings.database.url, log={"format": "json", "level": "INFO"})


def test_json_lines_carry_the_service_fields(settings: Settings) -> None:
    stream = io.StringIO()
    configure_logging(json_settings(settings), stream)

    logging.getLogger("uvicorn.error").info("from the standard library")

    line = json.loads(stream.getvalue().splitlines()[-1])
    assert line["message"] == "from the standard library"
    assert line["logger"] == "uvicorn.error"
    assert line["service"] == settings.service.name
    assert line["environment"] == "test"
    assert line["version"] == settings.service.version
    assert line["request_id"] == "-"


def test_text_format_is_used_in_development(settings: Settings) -> None:
    stream = io.StringIO()
    development = make_settings(
        settings.database.url, environment="development", log={"format": "auto"}
    )
    configure_logging(development, stream)

    logging.getLogger("alembic").warning("readable")

    assert "readable" in stream.getvalue()
    with pytest.raises(json.JSONDecodeError):
        json.loads(stream.getvalue().splitlines()[-1])


async def test_lines_inside_a_request_carry_its_id(settings: Settings) -> None:
    app = create_app(settings)
    stream = io.StringIO()
    configure_logging(json_settings(settings), stream)

    @app.get("/log-something")
    async def log_something() -> None:
        logging.getLogger("app.test").warning("inside")

    async with client_for(app) as client:
        await client.get("/log-something", headers={"X-Request-ID": "trace-me-0001"})

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    inside = [line for line in lines if line["message"] == "inside"]
    assert [line["request_id"] for line in inside] == ["trace-me-0001"]


def test_a_deprecated_variable_is_warned_about_at_start(
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SERVER_FORWARDED_ALLOW_IPS", "10.0.0.1")
    deprecated = make_settings(settings.database.url, log={"format": "json"})

    create_app(deprecated)

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["message"] for line in lines if line["level"] == "WARNING"] == [
        "SERVER_FORWARDED_ALLOW_IPS is deprecated: rename it to SERVER_TRUSTED_PROXIES"
    ]


def access_lines(output: str) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return [line for line in lines if line["logger"] == "access"]


async def test_each_request_writes_one_access_line(
    settings: Settings, engine: AsyncEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    app = notes_app(json_settings(settings))
    async with client_for(app, headers=user_headers(settings)) as client:
        response = await client.get(f"{NOTES}/424242")
        for probe in ("/live", "/ready", "/health", "/metrics"):
            await client.get(probe)

    [line] = access_lines(capsys.readouterr().out)
    assert line["request_id"] == response.headers["x-request-id"]
    assert line["method"] == "GET"
    assert line["path"] == f"{NOTES}/424242"
    assert line["route"] == NOTE_ROUTE
    assert line["status"] == 404
    assert isinstance(line["duration_ms"], float)
    assert line["service"] == settings.service.name
    assert "trace_id" not in line  # tracing is off


class CountedFlushes(io.StringIO):
    """A stream that counts its flushes (each is a write to the pipe)."""

    flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


async def test_access_lines_of_one_loop_step_leave_in_one_flush(
    settings: Settings,
) -> None:
    stream = CountedFlushes()
    log = AccessLog(json_settings(settings), stream)
    scope = {"method": "GET", "path": "/api/v1/notes", "client": ("10.0.0.1", 1)}

    for request_id in ("a", "b", "c"):
        log.write(scope, request_id, "/api/v1/notes", 200, 0.001)
    due = stream.flushes
    await asyncio.sleep(0)  # the step ends

    assert due == 0
    assert stream.flushes == 1
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["request_id"] for line in lines] == ["a", "b", "c"]
    log.write(scope, "d", "/api/v1/notes", 200, 0.001)
    await asyncio.sleep(0)
    assert stream.flushes == 2  # and the next step's line has its own


def test_an_access_line_written_outside_a_loop_is_flushed_at_once(
    settings: Settings,
) -> None:
    stream = CountedFlushes()
    log = AccessLog(json_settings(settings), stream)

    log.write({"method": "GET", "path": "/", "client": None}, "a", "/", 200, 0.001)

    assert stream.flushes == 1


async def test_access_lines_can_be_turned_off(
    settings: Settings, engine: AsyncEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    quiet = make_settings(
        settings.database.url, log={"format": "json", "level": "INFO", "access": False}
    )
    async with client_for(notes_app(quiet)) as client:
        await client.get(NOTES)

    assert access_lines(capsys.readouterr().out) == []


async def test_uvicorn_access_lines_are_not_written_twice(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(json_settings(settings))

    logging.getLogger("uvicorn.access").info('127.0.0.1 - "GET / HTTP/1.1" 200')

    assert "uvicorn.access" not in capsys.readouterr().out


async def test_text_access_lines_carry_the_request_id(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    text = make_settings(settings.database.url, log={"format": "text", "level": "INFO"})
    async with client_for(create_app(text)) as client:
        response = await client.get("/no/such/page")

    output = capsys.readouterr().out.splitlines()
    [line] = [line for line in output if "GET /no/such/page 404" in line]
    assert response.headers["x-request-id"] in line


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_a_decoded_newline_cannot_forge_a_line(
    settings: Settings, capsys: pytest.CaptureFixture[str], log_format: str
) -> None:
    chosen = make_settings(
        settings.database.url, log={"format": log_format, "level": "INFO"}
    )
    async with client_for(create_app(chosen)) as client:
        await client.get("/no/such%0aINFO forged line%1b[2K")

    lines = capsys.readouterr().out.splitlines()
    assert not [line for line in lines if line.startswith("INFO forged")], lines
    assert not [line for line in lines if "\x1b" in line], lines
    # (httpx logs the client's side of the request too, percent-encoded)
    [access] = [line for line in lines if "forged" in line and "httpx" not in line]
    if log_format == "json":
        assert json.loads(access)["path"] == "/no/such\nINFO forged line\x1b[2K"
    else:
        assert "/no/such\\nINFO forged line\\x1b[2K 404" in access


@pytest.mark.parametrize(
    ("environment", "shown"), [("test", False), ("development", True)]
)
async def test_statement_parameters_are_logged_in_development_only(
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
    environment: str,
    shown: bool,
) -> None:
    chosen = make_settings(
        settings.database.url,
        environment=environment,
        log={"format": "json", "level": "INFO"},
    )
    app = create_app(chosen)

    @app.get("/private")
    async def private(session: SessionDep) -> None:
        connection = await session.connection()
        await connection.execute(
            text("select * from no_such_table where name = :name"),
            {"name": "private-value-7"},
        )

    async with client_for(app) as client:
        response = await client.get("/private")

    output = capsys.readouterr().out
    assert response.status_code == 500
    assert "no_such_table" in output  # the failure is logged
    assert ("private-value-7" in output) is shown
