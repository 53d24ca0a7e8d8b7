"""The API against its own OpenAPI document (schemathesis), every operation.

Valid and invalid requests are generated from the schema and sent with a valid
token; every built-in check runs on every response: no server error, status
codes, content types, headers and bodies as documented, invalid data (unknown
fields included) refused, valid data accepted, and the token really required.
FUZZ_MAX_EXAMPLES sets the examples per operation (default 30).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode

from app.api import API_PREFIX
from tests.fixtures.identity import user_headers
from tests.fixtures.probe import NOTE_ROUTE, NOTES, notes_app
from tests.fixtures.routes import every_route
from tests.fixtures.settings import make_settings

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "30"))
DATABASE_URL = f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp()) / 'fuzz.db'}"
SETTINGS = make_settings(
    DATABASE_URL,
    database={"dsn": DATABASE_URL, "migrate_on_start": True},
    # Generated writes would hit the write limit: test the API, not the limit.
    ratelimit={"write": "100000/minute"},
    log={"level": "ERROR"},
)
# The whole API the app serves: the notes (tests/fixtures/probe.py), and yours.
APP = notes_app(SETTINGS)
# Schemathesis runs the app's lifespan itself (once per operation).
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
schema.config.generation.update(modes=list(GenerationMode))
schema.config.update(headers=user_headers(SETTINGS))


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_honours_its_schema(case: Any) -> None:
    case.call_and_validate()


def test_every_request_body_refuses_unknown_fields() -> None:
    """Schemathesis tests what the schema promises; this makes it promise it."""
    document = APP.openapi()
    bodies = {
        content["schema"]["$ref"].rsplit("/", 1)[-1]
        for path in document["paths"].values()
        for operation in path.values()
        for content in operation.get("requestBody", {}).get("content", {}).values()
    }
    schemas = document["components"]["schemas"]

    assert bodies
    assert {name: schemas[name].get("additionalProperties") for name in bodies} == {
        name: False for name in bodies
    }


def test_every_route_the_app_serves_is_fuzzed() -> None:
    """Every API route is in the document schemathesis reads: notes, and yours."""
    served = {
        (path, method.lower())
        for path, methods in every_route(APP)
        if path.startswith(API_PREFIX)
        for method in methods
    }
    paths = APP.openapi()["paths"]
    documented = {(path, method) for path, item in paths.items() for method in item}

    assert {(NOTES, "post"), (NOTE_ROUTE, "delete")} <= served
    assert served <= documented
