"""Log lines carry service, environment, version and the request id."""

from __future__ import annotations

import io
import json
import logging

import pytest

from app.logging import configure_logging
from app.main import create_app
from app.settings import Settings
from tests.fixtures.client import client_for
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
