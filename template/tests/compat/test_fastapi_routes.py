"""FastAPI: how it holds included routers (not a public API), which
app/compat/fastapi_routes.py reads. These tests pin that reading against
what FastAPI itself publishes, so a FastAPI upgrade that changes the shape
fails here, saying where."""

from __future__ import annotations

import importlib
import sys

import pytest
from asgi_lifespan import LifespanManager
from fastapi import APIRouter, FastAPI, WebSocket
from httpx import ASGITransport, AsyncClient

from app.compat.fastapi_routes import route_table
from app.plugin import Plugin
from app.settings import Settings
from tests.fixtures.client import client_for
from tests.fixtures.identity import user_headers
from tests.fixtures.probe import NOTE_ROUTE, NOTES, notes_app

pytestmark = pytest.mark.anyio


def nested_app(settings: Settings) -> FastAPI:
    """Routers two deep, a parameter in an inclusion's prefix, a WebSocket."""
    inner = APIRouter(prefix="/inner")

    @inner.put("/{thing_id:int}")
    async def put_thing(thing_id: int) -> dict[str, int]:
        return {"id": thing_id}

    @inner.get("/{thing_id:int}", include_in_schema=False)
    async def get_thing(thing_id: int) -> dict[str, int]:
        return {"id": thing_id}

    @inner.websocket("/feed")
    async def feed(websocket: WebSocket) -> None:
        await websocket.close()

    outer = APIRouter(prefix="/outer")
    outer.include_router(inner, prefix="/orgs/{org_id}")
    return notes_app(settings, plugins=[Plugin(name="nested", api_routers=[outer])])


def test_an_included_router_is_one_branch_with_its_router_and_prefix() -> None:
    inner = APIRouter()

    @inner.get("/thing")
    async def thing() -> None:
        return None

    app = FastAPI()
    app.include_router(inner, prefix="/outer")
    [branch] = [route for route in app.routes if hasattr(route, "original_router")]

    assert getattr(branch, "original_router", None) is inner
    inclusion = getattr(branch, "include_context", None)
    assert getattr(inclusion, "prefix", None) == "/outer"


async def test_the_table_has_the_openapi_document_s_paths_and_methods(
    settings: Settings,
) -> None:
    app = nested_app(settings)
    table = {
        (entry.template, method.lower())
        for entry in route_table(app)
        for method in entry.methods - {"HEAD"}
    }
    document = app.openapi()["paths"]

    documented = {(path, method) for path, item in document.items() for method in item}
    assert documented <= table
    thing = "/api/v1/outer/orgs/{org_id}/inner/{thing_id}"
    assert {
        (thing, "put"),
        (thing, "get"),
        (NOTES, "post"),
        (NOTE_ROUTE, "delete"),
    } <= table
    assert "/api/v1/outer/orgs/{org_id}/inner/feed" in {
        entry.template for entry in route_table(app)
    }


async def test_each_entry_matches_the_paths_fastapi_routes_to_it(
    settings: Settings,
) -> None:
    app = nested_app(settings)
    entries = {entry.endpoint.__name__: entry for entry in route_table(app)}
    path = app.url_path_for("put_thing", org_id=3, thing_id=4)

    async with client_for(app, headers=user_headers(settings)) as client:
        answer = await client.put(path)
        refused = await client.delete(path)

    assert path == "/api/v1/outer/orgs/3/inner/4"
    assert entries["put_thing"].regex.fullmatch(path)
    assert entries["put_thing"].template.replace("{org_id}", "3") == (
        "/api/v1/outer/orgs/3/inner/{thing_id}"
    )
    assert answer.status_code == 200, answer.text
    # The 405 names the methods of every route at that path (from the table).
    assert refused.status_code == 405
    assert refused.headers["allow"] == "GET, PUT"


async def test_a_405_behind_a_root_path_names_the_methods(settings: Settings) -> None:
    """Behind a proxy's prefix (`--root-path /svc`): the URL's path has it,
    the routes do not."""
    app = nested_app(settings)
    async with LifespanManager(app) as manager:
        transport = ASGITransport(app=manager.app, root_path="/svc")
        async with AsyncClient(
            transport=transport, base_url="http://test", headers=user_headers(settings)
        ) as client:
            refused = await client.delete("/svc/api/v1/outer/orgs/3/inner/4")

    assert refused.status_code == 405
    assert refused.headers["allow"] == "GET, PUT"


def test_the_old_module_of_the_route_table_imports_with_a_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(sys.modules, "app.routes", raising=False)

    with pytest.warns(DeprecationWarning, match="app.compat.fastapi_routes"):
        old = importlib.import_module("app.routes")

    assert old.route_table is route_table
