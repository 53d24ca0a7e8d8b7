"""Start-up on the embedded default: migrations create the schema."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from app.main import create_app
from app.models import metadata
from tests.fixtures.client import client_for
from tests.fixtures.identity import user_headers
from tests.fixtures.probe import NOTES, notes_app
from tests.fixtures.settings import make_settings, production_values

pytestmark = pytest.mark.anyio


async def test_migrate_on_start_creates_the_schema(tmp_path: Path) -> None:
    database = tmp_path / "nested" / "app.db"
    settings = make_settings(
        f"sqlite+aiosqlite:///{database}", database={
            "dsn": f"sqlite+aiosqlite:///{database}", "migrate_on_start": True
        }
    )  # fmt: skip
    app = notes_app(settings)

    async with client_for(app, headers=user_headers(settings)) as client:
        created = await client.post(NOTES, json={"name": "first"})
        ready = await client.get("/ready")

    assert database.exists()
    with closing(sqlite3.connect(database)) as connection:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
        tables = {name for (name,) in rows}
    assert {"alembic_version", *metadata.tables} <= tables
    assert created.status_code == 201
    assert ready.status_code == 200


def test_openapi_describes_every_route(tmp_path: Path) -> None:
    app = notes_app(make_settings(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"))

    schema = app.openapi()

    assert schema["info"]["title"] == app.title
    assert schema["info"]["version"] == app.version
    operations = [
        operation for path in schema["paths"].values() for operation in path.values()
    ]
    assert operations
    assert all(operation.get("summary") for operation in operations)
    assert all(operation.get("description") for operation in operations)


def test_docs_are_off_in_production_unless_enabled(tmp_path: Path) -> None:
    production = production_values()
    url = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"

    hidden = create_app(make_settings(url, **production))
    shown = create_app(make_settings(url, docs_in_production=True, **production))

    assert hidden.openapi_url is None
    assert shown.openapi_url == "/openapi.json"
