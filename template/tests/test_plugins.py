"""What an owner plugs in through the seams works as the template's own
parts do: a plugin's routers (under /api/v1 behind the token check, and
public ones outside it), its middleware (inside the template's edge), its
resources and readiness check, its exception handler; and a settings group
of the service's own is read from the environment and refused with one line.
Nothing here edits a template file: each part is passed as a `Plugin`, the
way app/plugins.py lists them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, ValidationError
from starlette.middleware import Middleware
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.health import Check
from app.main import create_app
from app.plugin import Plugin, Resources
from app.settings import Settings, describe_error
from app.state import value_of
from tests.fixtures.client import client_for
from tests.fixtures.identity import user_headers

pytestmark = pytest.mark.anyio


class Ledger:
    """A resource a plugin opens for the app's lifetime."""

    def __init__(self) -> None:
        self.open = True
        self.healthy = True


class LedgerClosed(Exception):
    """A domain error of the plugin's own."""


class Stamp:
    """Pure ASGI middleware: marks every response it sees."""

    def __init__(self, app: ASGIApp, value: str) -> None:
        self.app = app
        self.value = value

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-ledger", self.value.encode()),
                ]
            await send(message)

        await self.app(scope, receive, stamped)


ledgers: list[Ledger] = []


@asynccontextmanager
async def open_ledger(_: Settings) -> AsyncIterator[Resources]:
    ledger = Ledger()
    ledgers.append(ledger)

    async def ping() -> None:
        if not ledger.healthy:
            raise ConnectionError("ledger down")

    try:
        yield Resources(values={"ledger": ledger}, checks=[Check("ledger", ping)])
    finally:
        ledger.open = False


api = APIRouter(prefix="/ledger")
public = APIRouter(prefix="/ledger-status")


@api.get("")
async def read_ledger(request: Request) -> dict[str, bool]:
    """The ledger, behind the token check."""
    ledger = value_of(request, "ledger")
    assert isinstance(ledger, Ledger)
    return {"open": ledger.open}


@api.post("/close")
async def close_ledger() -> None:
    """Refused: the plugin's own error, rendered by its handler."""
    raise LedgerClosed


@public.get("")
async def ledger_status() -> dict[str, str]:
    """Public: no token."""
    return {"status": "ok"}


async def ledger_closed(_: Request, __: LedgerClosed) -> Response:
    return JSONResponse({"title": "the ledger is closed"}, status_code=409)


LEDGER = Plugin(
    name="ledger",
    api_routers=[api],
    routers=[public],
    middleware=[Middleware(Stamp, value="seen")],
    lifespan=open_ledger,
    exception_handlers={LedgerClosed: ledger_closed},
)


@pytest.fixture
def jwt_settings(module_settings: Settings) -> Settings:
    return module_settings.model_copy(
        update={"auth": module_settings.auth.model_copy(update={"mode": "jwt"})}
    )


async def test_a_plugins_routes_resources_and_handler_work(
    jwt_settings: Settings,
) -> None:
    app = create_app(jwt_settings, extra_plugins=[LEDGER])
    headers = user_headers(jwt_settings)

    async with client_for(app) as client:
        anonymous = await client.get("/api/v1/ledger")
        read = await client.get("/api/v1/ledger", headers=headers)
        closed = await client.post("/api/v1/ledger/close", headers=headers)
        status = await client.get("/ledger-status")

    assert anonymous.status_code == 401
    assert (read.status_code, read.json()) == (200, {"open": True})
    assert (closed.status_code, closed.json()) == (
        409,
        {"title": "the ledger is closed"},
    )
    assert (status.status_code, status.json()) == (200, {"status": "ok"})
    assert not ledgers[-1].open, "the plugin's lifespan closed its resource"


async def test_a_plugins_middleware_runs_inside_the_templates_edge(
    jwt_settings: Settings,
) -> None:
    app = create_app(jwt_settings, extra_plugins=[LEDGER])

    async with client_for(app) as client:
        response = await client.get("/ledger-status")

    assert response.headers["x-ledger"] == "seen"
    # The template's outer middleware saw the plugin's response too.
    assert response.headers["x-request-id"]
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_a_plugins_check_joins_ready(jwt_settings: Settings) -> None:
    app = create_app(jwt_settings, extra_plugins=[LEDGER])

    async with client_for(app) as client:
        healthy = await client.get("/ready")
        ledgers[-1].healthy = False
        failing = await client.get("/ready")

    assert healthy.json()["checks"]["ledger"]["status"] == "ok"
    assert failing.status_code == 503
    assert failing.json()["checks"]["ledger"]["status"] == "fail"


class ProbeSettings(BaseModel):
    """A group as an owner writes one (its name is the variables' prefix)."""

    limit: int = Field(default=30, ge=1, le=365)


class WithProbe(Settings):
    """What app/own_settings.py's OwnSettings adds, as Settings sees it."""

    probe: ProbeSettings = ProbeSettings()


def test_a_settings_group_of_the_services_own_is_read_and_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PROBE_LIMIT", "14")
    assert WithProbe(_env_file=None).probe.limit == 14

    monkeypatch.setenv("PROBE_LIMIT", "0")
    with pytest.raises(ValidationError) as refused:
        WithProbe(_env_file=None)

    line = describe_error(refused.value)
    assert line.startswith("invalid settings: PROBE_LIMIT:")
    assert "\n" not in line


class Alias:
    """Pure ASGI middleware: serves /api/latest/... as /api/v1/..."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api/latest/"):
            path = "/api/v1/" + scope["path"].removeprefix("/api/latest/")
            scope = {**scope, "path": path, "raw_path": path.encode()}
        await self.app(scope, receive, send)


async def test_a_plugins_middleware_runs_before_the_apis_guard(
    jwt_settings: Settings,
) -> None:
    """A path a plugin's middleware rewrites into /api/v1 is guarded too."""
    aliases = Plugin(name="aliases", middleware=[Middleware(Alias)])
    app = create_app(jwt_settings, extra_plugins=[LEDGER, aliases])

    async with client_for(app) as client:
        anonymous = await client.get("/api/latest/ledger")
        alice = await client.get(
            "/api/latest/ledger", headers=user_headers(jwt_settings)
        )

    assert (anonymous.status_code, alice.status_code) == (401, 200)


async def test_a_plugin_value_named_as_the_states_own_is_refused(
    jwt_settings: Settings,
) -> None:
    @asynccontextmanager
    async def directory(_: Settings) -> AsyncIterator[Resources]:
        yield Resources(values={"user_id": "someone"})

    app = create_app(
        jwt_settings, extra_plugins=[Plugin(name="users", lifespan=directory)]
    )

    with pytest.raises(ValueError, match="the state's own names: \\['user_id'\\]"):
        async with app.router.lifespan_context(app):
            pass
