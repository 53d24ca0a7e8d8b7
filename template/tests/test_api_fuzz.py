"""The template's API against its OpenAPI document (schemathesis): the probes
and the tests' notes, through the whole stack a request of yours takes.

Valid and invalid requests are generated from the schema and sent with a valid
token, on PostgreSQL when DATABASE_DSN names a server (else SQLite); every built-in check runs on every response: no server error, status
codes, content types, headers and bodies as documented, invalid data (unknown
fields included) refused, valid data accepted, and the token really required.
FUZZ_MAX_EXAMPLES sets the examples per operation (default 30). Your routes
get the same with a test of your own: `fuzz(app, path_regex)` (the example's
is tests/items/test_fuzz.py).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.schemas import BaseSchema

from app.api import API_PREFIX
from tests.fixtures.databases import postgres_database, postgres_server_url
from tests.fixtures.identity import user_headers
from tests.fixtures.probe import NOTE_ROUTE, NOTES, notes_app
from tests.fixtures.routes import every_route
from tests.fixtures.settings import make_settings

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "30"))


def fuzz_database_url() -> str:
    """A database of the fuzz run's own: on the PostgreSQL server when
    DATABASE_DSN names one (text it cannot store fails there, not on
    SQLite), dropped at exit; else a SQLite file."""
    server = postgres_server_url()
    if server is None:
        return f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp()) / 'fuzz.db'}"
    database = contextlib.ExitStack()
    atexit.register(database.close)
    return database.enter_context(postgres_database(server))


DATABASE_URL = fuzz_database_url()
SETTINGS = make_settings(
    DATABASE_URL,
    database={"dsn": DATABASE_URL, "migrate_on_start": True},
    # Generated writes would hit the write limit: test the API, not the limit.
    ratelimit={"write": "100000/minute"},
    log={"level": "ERROR"},
)
APP = notes_app(SETTINGS)
# The template's routes: the probes and the notes (tests/fixtures/probe.py).
TEMPLATE_ROUTES = rf"^(/live|/ready|/health|{NOTES})"


def fuzz(app: FastAPI, path_regex: str) -> BaseSchema:
    """The operations of `app` whose path matches, ready to fuzz (for tests
    of your own routes too). Schemathesis runs the app's lifespan itself."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    schema.config.generation.update(modes=list(GenerationMode))
    schema.config.update(headers=user_headers(SETTINGS))
    return schema.include(path_regex=path_regex)


schema = fuzz(APP, TEMPLATE_ROUTES)


# How every fuzz test of the service generates its examples.
FUZZ = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@schema.parametrize()
@FUZZ
def test_every_operation_honours_its_schema(case: Any) -> None:
    case.call_and_validate()


def test_every_request_body_refuses_unknown_fields() -> None:
    """Schemathesis tests what the schema promises; this makes it promise it."""
    document = APP.openapi()
    bodies = {
        content["schema"]["$ref"].rsplit("/", 1)[-1]
        for path, item in document["paths"].items()
        if re.match(TEMPLATE_ROUTES, path)
        for operation in item.values()
        for content in operation.get("requestBody", {}).get("content", {}).values()
    }
    schemas = document["components"]["schemas"]

    assert bodies
    assert {name: schemas[name].get("additionalProperties") for name in bodies} == {
        name: False for name in bodies
    }


def test_every_template_route_the_app_serves_is_fuzzed() -> None:
    """Every template route is in the document schemathesis reads."""
    served = {
        (path, method.lower())
        for path, methods in every_route(APP)
        if re.match(TEMPLATE_ROUTES, path) and path.startswith(API_PREFIX)
        for method in methods
    }
    paths = APP.openapi()["paths"]
    documented = {(path, method) for path, item in paths.items() for method in item}

    assert {(NOTES, "post"), (NOTE_ROUTE, "delete")} <= served
    assert served <= documented
