"""Authentication: every protected route refuses a missing or bad token, and
real signed tokens (keys made here) are accepted, in both token modes."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import time
from contextlib import suppress
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi import APIRouter, FastAPI, WebSocket
from loguru import logger
from starlette.types import Message
from starlette.websockets import WebSocketDisconnect

from app import auth
from app.__main__ import main
from app.auth import Authenticator
from app.main import create_app
from app.plugin import Plugin
from app.settings import Settings
from tests.fixtures.client import client_for
from tests.fixtures.identity import (
    ALICE,
    AUDIENCE,
    ISSUER,
    IdentityProvider,
    auth_values,
    bearer,
    identity_provider,
    token_for,
    user_headers,
)
from tests.fixtures.probe import NOTE_ROUTE, NOTES, notes_app
from tests.fixtures.routes import every_route
from tests.fixtures.settings import make_settings, production_values

pytestmark = pytest.mark.anyio
TOKEN_MODES = ["jwt", "oidc"]
# Routes anyone may call: probes, metrics (their own token) and the API docs.
PUBLIC = {
    "/live",
    "/ready",
    "/health",
    "/metrics",
    "/openapi.json",
    "/docs",
    "/docs/oauth2-redirect",
}


@pytest.fixture
def settings(module_settings: Settings) -> Settings:
    """Apps here commit, to a database of this module (SQLite only)."""
    return module_settings


def settings_for(settings: Settings, mode: str, **auth: Any) -> Settings:
    return make_settings(
        settings.database.url,
        database=settings.database.model_dump(),
        auth={"mode": mode, **auth},
        log={"format": "json", "level": "INFO"},
    )


@pytest.fixture
def jwt_app(settings: Settings) -> FastAPI:
    return notes_app(settings_for(settings, "jwt"))


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values = {"iss": ISSUER, "aud": AUDIENCE, "sub": ALICE, "iat": now}
    values["exp"] = now + 300
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def forge_hs256(payload: dict[str, Any], secret: bytes, kid: str) -> str:
    """An HS256 token made by hand (PyJWT refuses a public key as a secret)."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    body = b64(json.dumps(payload).encode())
    signature = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256)
    return f"{header}.{body}.{b64(signature.digest())}"


def concrete(path: str) -> str:
    """The path template with every parameter filled in (`{note_id}` -> `1`)."""
    return re.sub(r"\{[^}]+\}", "1", path)


@pytest.mark.parametrize("mode", TOKEN_MODES)
async def test_every_non_public_route_answers_401_without_a_token(
    settings: Settings, mode: str
) -> None:
    app = notes_app(settings_for(settings, mode))
    calls = [
        (method, concrete(path))
        for path, methods in every_route(app)
        if path not in PUBLIC
        for method in sorted(methods)
    ]
    # The walk found the API: at least the notes' routes.
    assert {
        ("GET", NOTES),
        ("POST", NOTES),
        ("GET", f"{NOTES}/1"),
        ("DELETE", f"{NOTES}/1"),
    } <= set(calls)

    async with client_for(app) as client:
        answers = {call: await client.request(*call) for call in calls}

    refused = {call: r.status_code for call, r in answers.items()}
    assert set(refused.values()) == {401}, refused
    assert all(r.headers["www-authenticate"] == "Bearer" for r in answers.values())
    assert {r.headers["content-type"] for r in answers.values()} == {
        "application/problem+json"
    }


async def test_a_route_that_forgets_current_user_still_needs_a_token(
    settings: Settings,
) -> None:
    forgetful = APIRouter()

    @forgetful.get("/forgotten")
    async def forgotten() -> dict[str, bool]:
        return {"open": True}

    # Plugged in the way an owner plugs in a router of their own.
    jwt_settings = settings_for(settings, "jwt")
    app = create_app(
        jwt_settings, extra_plugins=[Plugin(name="forgetful", api_routers=[forgetful])]
    )
    async with client_for(app) as client:
        anonymous = await client.get("/api/v1/forgotten")
        alice = await client.get(
            "/api/v1/forgotten", headers=user_headers(jwt_settings)
        )

    assert anonymous.status_code == 401
    assert alice.json() == {"open": True}


async def test_a_path_no_route_serves_under_the_api_needs_a_token_too(
    settings: Settings,
) -> None:
    """The guard runs before routing: a caller without a token learns
    nothing of which API paths exist."""
    jwt_settings = settings_for(settings, "jwt")
    async with client_for(notes_app(jwt_settings)) as client:
        anonymous = await client.get("/api/v1/no-such-thing")
        alice = await client.get(
            "/api/v1/no-such-thing", headers=user_headers(jwt_settings)
        )

    assert (anonymous.status_code, alice.status_code) == (401, 404)


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each token PyJWT decodes (verifies), in order."""
    tokens: list[str] = []
    decode = jwt.decode

    def counted(token: str, *args: Any, **kwargs: Any) -> Any:
        tokens.append(token)
        return decode(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counted)
    return tokens


async def test_a_verified_token_is_checked_again_only_once_it_has_expired(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, decoded: list[str]
) -> None:
    authenticator = Authenticator(settings_for(settings, "jwt"))
    token = authenticator.mint(ALICE, minutes=5)

    first = await authenticator.authenticate(token)
    again = await authenticator.authenticate(token)
    checks_while_valid = len(decoded)
    expired = time.time() + min(5 * 60, auth.CHECKED_FOR) + 1
    monkeypatch.setattr(time, "time", lambda: expired)
    await authenticator.authenticate(token)

    assert first is again
    assert checks_while_valid == 1
    assert len(decoded) == 2  # after `exp`, the token is verified again


async def test_the_verified_tokens_remembered_are_bounded(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth, "CHECKED_TOKENS", 3)
    authenticator = Authenticator(settings_for(settings, "jwt"))
    tokens = [authenticator.mint(f"user-{n}") for n in range(5)]

    for token in tokens:
        await authenticator.authenticate(token)

    assert list(authenticator.checked) == tokens[2:]


async def test_a_request_without_a_token_logs_no_user_of_an_earlier_one(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """The user id is bound to a request's own log lines, not to the next
    request's on the same task (a test client runs them on one)."""
    hello = APIRouter()

    @hello.get("/hello")
    async def say_hello() -> None:
        logger.info("hello")

    app_settings = settings_for(settings, "jwt", public_reads=True)
    app = create_app(
        app_settings, extra_plugins=[Plugin(name="hello", api_routers=[hello])]
    )
    async with client_for(app) as client:
        await client.get("/api/v1/hello", headers=user_headers(app_settings))
        await client.get("/api/v1/hello")

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    first, second = [line for line in lines if line["message"] == "hello"]
    assert first["user_id"] == ALICE
    assert "user_id" not in second
    assert first["request_id"] != second["request_id"] != "-"


async def test_a_websocket_under_the_api_needs_a_token_too(
    settings: Settings,
) -> None:
    """Refused before the handshake (close code 1008) without a token."""
    live = APIRouter()

    @live.websocket("/live-notes")
    async def live_notes(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.close()

    jwt_settings = settings_for(settings, "jwt")
    app = create_app(
        jwt_settings, extra_plugins=[Plugin(name="live", api_routers=[live])]
    )

    async def first_answer(headers: dict[str, str]) -> Message:
        """What the app sends first on a WebSocket to /api/v1/live-notes."""
        sent: list[Message] = []

        async def receive() -> Message:
            return {"type": "websocket.connect"}

        async def send(message: Message) -> None:
            sent.append(message)
            if message["type"] == "websocket.accept":
                raise WebSocketDisconnect  # the client hangs up

        scope = {
            "type": "websocket", "path": "/api/v1/live-notes",
            "raw_path": b"/api/v1/live-notes", "root_path": "", "scheme": "ws",
            "query_string": b"", "client": ("127.0.0.1", 4000),
            "server": ("127.0.0.1", 80), "subprotocols": [],
            "headers": [(b"host", b"test")]
            + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
            "state": dict(state or {}), "asgi": {"version": "3.0"},
        }  # fmt: skip
        with suppress(WebSocketDisconnect):
            await app(scope, receive, send)
        return sent[0]

    async with app.router.lifespan_context(app) as state:
        anonymous = await first_answer({})
        alice = await first_answer(user_headers(jwt_settings))

    assert anonymous == {"type": "websocket.close", "code": 1008}
    assert alice["type"] == "websocket.accept"


async def test_a_token_remembered_is_checked_again_once_the_keys_change(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, decoded: list[str]
) -> None:
    authenticator = Authenticator(settings_for(settings, "jwt"))
    token = authenticator.mint(ALICE)
    await authenticator.authenticate(token)
    await authenticator.authenticate(token)
    # The identity provider's keys were fetched again (oidc).
    monkeypatch.setattr(authenticator, "key_generation", lambda: 1)
    await authenticator.authenticate(token)

    assert len(decoded) == 2


def test_the_openapi_document_asks_each_api_operation_for_a_token(
    settings: Settings,
) -> None:
    def operations(document: dict[str, Any], api: bool) -> list[dict[str, Any]]:
        return [
            operation
            for path, item in document["paths"].items()
            if path.startswith("/api/v1/") == api
            for operation in item.values()
        ]

    guarded = notes_app(settings_for(settings, "jwt")).openapi()
    open_ = notes_app(settings_for(settings, "none")).openapi()

    assert operations(guarded, api=True)
    assert all(
        op["security"] == [{"HTTPBearer": []}] for op in operations(guarded, True)
    )
    assert not any("security" in op for op in operations(guarded, api=False))
    assert guarded["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert not any("security" in op for op in operations(open_, api=True))
    assert "securitySchemes" not in open_.get("components", {})


def test_the_walk_sees_the_routes_of_included_routers(settings: Settings) -> None:
    inner = APIRouter(prefix="/inner")

    @inner.get("/{thing_id}")
    async def thing(thing_id: int) -> dict[str, int]:
        return {"id": thing_id}

    outer = APIRouter(prefix="/outer")
    outer.include_router(inner)
    nested = Plugin(name="nested", api_routers=[outer])
    app = notes_app(settings_for(settings, "jwt"), plugins=[nested])

    paths = {path for path, _ in every_route(app)}

    assert paths >= PUBLIC
    assert {NOTES, NOTE_ROUTE, "/api/v1/outer/inner/{thing_id}"} <= paths


async def test_public_reads_let_get_routes_answer_without_a_token(
    settings: Settings,
) -> None:
    app = notes_app(settings_for(settings, "jwt", public_reads=True))
    async with client_for(app) as client:
        read = await client.get(NOTES)
        write = await client.post(NOTES, json={"name": "x"})

    assert read.status_code == 200
    assert write.status_code == 401


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        pytest.param(
            lambda s: jwt.encode(claims(exp=int(time.time()) - 120), s, "HS256"),
            "the token has expired",
            id="expired",
        ),
        pytest.param(
            lambda s: jwt.encode(claims(iss="https://evil.example/"), s, "HS256"),
            "the token's issuer is not accepted",
            id="wrong-issuer",
        ),
        pytest.param(
            lambda s: jwt.encode(claims(aud="another-service"), s, "HS256"),
            "the token's audience is not accepted",
            id="wrong-audience",
        ),
        pytest.param(
            lambda s: jwt.encode(claims(), "", "none"),
            "the token's algorithm is not accepted",
            id="alg-none",
        ),
        pytest.param(
            lambda s: jwt.encode(claims(), "another-secret-" * 3, "HS256"),
            "the token's signature is not valid",
            id="wrongly-signed",
        ),
        pytest.param(
            lambda s: jwt.encode(claims(exp=None), s, "HS256"),
            "the token has no 'exp' claim",
            id="no-expiry",
        ),
        pytest.param(
            lambda s: jwt.encode(claims(sub=None), s, "HS256"),
            "the token has no 'sub' claim",
            id="no-subject",
        ),
        pytest.param(
            lambda s: jwt.encode(claims(nbf=int(time.time()) + 600), s, "HS256"),
            "the token is not valid yet",
            id="not-yet-valid",
        ),
        pytest.param(lambda s: "not.a.token", "the token is malformed", id="garbage"),
        pytest.param(
            lambda s: jwt.encode(claims(sub=""), s, "HS256"),
            "the token's subject is not a user id",
            id="empty-subject",
        ),
        pytest.param(
            lambda s: jwt.encode(claims(sub="u" * 201), s, "HS256"),
            "the token's subject is not a user id",
            id="subject-too-long-to-store",
        ),
        pytest.param(
            lambda s: jwt.encode(claims(sub="alice\x00"), s, "HS256"),
            "the token's subject is not a user id",
            id="subject-with-nul",
        ),
        pytest.param(
            lambda s: jwt.encode(claims(sub="alice\nforged line"), s, "HS256"),
            "the token's subject is not a user id",
            id="subject-with-newline",
        ),
        pytest.param(
            lambda s: jwt.encode(claims(exp=10**20), s, "HS256"),
            "the token lives longer than AUTH_MAX_TOKEN_LIFETIME allows",
            id="exp-1e20",
        ),
        pytest.param(
            lambda s: jwt.encode(
                claims(exp=int(time.time()) + 86_400 + 120), s, "HS256"
            ),
            "the token lives longer than AUTH_MAX_TOKEN_LIFETIME allows",
            id="lifetime-over-a-day",
        ),
    ],
)
async def test_bad_tokens_are_refused(
    jwt_app: FastAPI, settings: Settings, token: Any, reason: str
) -> None:
    secret = settings.secret_key.get_secret_value()
    async with client_for(jwt_app, headers=bearer(token(secret))) as client:
        response = await client.get(NOTES)

    assert response.status_code == 401
    assert response.json()["detail"] == reason
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_a_token_expired_within_the_leeway_is_accepted(
    jwt_app: FastAPI, settings: Settings
) -> None:
    secret = settings.secret_key.get_secret_value()
    token = jwt.encode(claims(exp=int(time.time()) - 5), secret, "HS256")
    async with client_for(jwt_app, headers=bearer(token)) as client:
        assert (await client.get(NOTES)).status_code == 200


async def test_an_rs256_token_is_refused_in_jwt_mode(
    jwt_app: FastAPI, identity: IdentityProvider
) -> None:
    async with client_for(jwt_app, headers=bearer(identity.mint(ALICE))) as client:
        response = await client.get(NOTES)

    assert response.status_code == 401
    assert response.json()["detail"] == "the token's algorithm is not accepted"


@pytest.mark.parametrize("kid", ["rsa-1", "ec-1"])
async def test_identity_provider_tokens_are_accepted(
    settings: Settings, identity: IdentityProvider, kid: str
) -> None:
    app = notes_app(settings_for(settings, "oidc"))
    token = identity.mint(ALICE, kid=kid)
    async with client_for(app, headers=bearer(token)) as client:
        created = await client.post(NOTES, json={"name": f"by-{kid}"})
        listed = await client.get(NOTES)

        deleted = await client.delete(created.headers["location"])

    assert created.status_code == 201, created.text
    assert [n["name"] for n in listed.json()["items"]] == [f"by-{kid}"]
    assert deleted.status_code == 204


async def test_hmac_signed_with_the_public_key_is_refused(
    settings: Settings, identity: IdentityProvider
) -> None:
    """The classic RS256/HS256 confusion: the public key used as a secret."""
    public_pem = (
        identity.private["rsa-1"]
        .public_key()
        .public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    token = forge_hs256(claims(), public_pem, "rsa-1")
    app = notes_app(settings_for(settings, "oidc", algorithms="RS256,ES256"))
    async with client_for(app, headers=bearer(token)) as client:
        response = await client.get(NOTES)

    assert response.status_code == 401
    assert response.json()["detail"] == "the token's algorithm is not accepted"


async def test_a_key_id_must_match_its_key_type(
    settings: Settings, identity: IdentityProvider
) -> None:
    # An ES256 token claiming the RSA key's id.
    token = jwt.encode(
        claims(), identity.private["ec-1"], "ES256", headers={"kid": "rsa-1"}
    )
    app = notes_app(settings_for(settings, "oidc"))
    async with client_for(app, headers=bearer(token)) as client:
        response = await client.get(NOTES)

    assert response.status_code == 401
    assert response.json()["detail"] == "the token's algorithm does not match its key"


async def test_rotated_keys_are_fetched_once_and_unknown_ids_do_not_flood(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth, "JWKS_MIN_REFRESH", 0.5)
    with identity_provider() as provider:
        app = notes_app(settings_for(settings, "oidc", **auth_values(provider)))
        async with client_for(app) as client:
            first = await client.get(NOTES, headers=bearer(provider.mint(ALICE)))
            rsa_kid, _ = provider.rotate()
            await asyncio.sleep(0.6)
            rotated = await client.get(
                NOTES, headers=bearer(provider.mint(ALICE, kid=rsa_kid))
            )
            fetches = provider.fetches
            unknown = [
                await client.get(
                    NOTES,
                    headers=bearer(provider.mint(ALICE, kid="rsa-1") + "x"),
                )
                for _ in range(3)
            ]
            forged_kids = [
                jwt.encode(
                    claims(), provider.private["rsa-1"], "RS256", headers={"kid": kid}
                )
                for kid in ("nope-1", "nope-2", "nope-3")
            ]
            for token in forged_kids:
                response = await client.get(NOTES, headers=bearer(token))
                assert response.json()["detail"] == "the token's signing key is unknown"

    assert first.status_code == 200
    assert rotated.status_code == 200  # the new key id made it fetch again
    assert fetches == 2
    assert {r.status_code for r in unknown} == {401}
    # Unknown key ids within JWKS_MIN_REFRESH do not fetch again.
    assert provider.fetches == 2


async def test_an_unreachable_identity_provider_is_a_503(
    settings: Settings, identity: IdentityProvider
) -> None:
    closed = httpx.URL("http://127.0.0.1:9/jwks.json")
    app = notes_app(settings_for(settings, "oidc", jwks_url=str(closed)))
    async with client_for(app, headers=bearer(identity.mint(ALICE))) as client:
        response = await client.get(NOTES)

    assert response.status_code == 503
    assert response.json()["detail"] == "the identity provider's keys cannot be fetched"


async def test_oidc_without_its_provider_starts_and_answers_503_to_tokens(
    settings: Settings, identity: IdentityProvider
) -> None:
    unset = settings_for(settings, "oidc", jwks_url=None, issuer=None, audience=None)
    async with client_for(notes_app(unset)) as client:
        anonymous = await client.get(NOTES)
        with_token = await client.get(NOTES, headers=bearer(identity.mint(ALICE)))

    assert anonymous.status_code == 401
    assert with_token.status_code == 503
    assert "AUTH_JWKS_URL, AUTH_ISSUER, AUTH_AUDIENCE" in with_token.json()["detail"]


async def test_a_failing_identity_provider_is_asked_again_only_after_a_pause(
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """503 with Retry-After meanwhile; the log says it once each way."""
    monkeypatch.setattr(auth, "JWKS_MIN_REFRESH", 0.5)
    with identity_provider() as provider:
        provider.failing = True
        app = notes_app(settings_for(settings, "oidc", **auth_values(provider)))
        async with client_for(app, headers=bearer(provider.mint(ALICE))) as client:
            down = [await client.get(NOTES) for _ in range(3)]
            await asyncio.sleep(0.6)
            down.append(await client.get(NOTES))  # asks again, fails again
            fetches_while_down = provider.fetches
            provider.failing = False
            await asyncio.sleep(0.6)
            back = await client.get(NOTES)
    out = capsys.readouterr().out.splitlines()
    messages = [json.loads(line)["message"] for line in out if line.startswith("{")]

    assert [response.status_code for response in down] == [503] * 4
    # JWKS_MIN_REFRESH (0.5 s here): when the provider is asked again.
    assert {response.headers["retry-after"] for response in down} == {"1"}
    said = [m for m in messages if m.startswith("identity provider's keys")]
    assert len(said) == 2, said
    assert "unreachable" in said[0]
    assert "reachable again after" in said[1]
    assert fetches_while_down == 2
    assert back.status_code == 200


@pytest.mark.parametrize("mode", TOKEN_MODES)
async def test_the_user_id_is_in_the_access_line(
    settings: Settings,
    identity: IdentityProvider,
    mode: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    app_settings = settings_for(settings, mode)
    app = notes_app(app_settings)
    token = token_for(app_settings, identity, "carol")
    async with client_for(app, headers=bearer(token)) as client:
        await client.get(NOTES)

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    [access] = [line for line in lines if line.get("logger") == "access"]
    assert access["user_id"] == "carol"


async def test_the_development_helper_mints_a_token_the_service_accepts(
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    app_settings = settings_for(settings, "jwt")
    monkeypatch.setenv("AUTH_MODE", "jwt")
    monkeypatch.setenv("AUTH_ISSUER", ISSUER)
    monkeypatch.setenv("AUTH_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("SECRET_KEY", app_settings.secret_key.get_secret_value())

    main(["token", "dora", "--minutes", "5"])
    token = capsys.readouterr().out.strip()

    user = await Authenticator(app_settings).authenticate(token)
    assert user.id == "dora"
    assert 240 < user.claims["exp"] - time.time() <= 300


def test_the_development_helper_refuses_a_token_living_too_long(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTH_MODE", "jwt")
    monkeypatch.setenv("AUTH_MAX_TOKEN_LIFETIME", "3600")
    monkeypatch.setenv("SECRET_KEY", settings.secret_key.get_secret_value())

    with pytest.raises(SystemExit, match="a token may live at most 60 minutes"):
        main(["token", "dora", "--minutes", "61"])


def test_the_development_helper_refuses_production(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    values = production_values()
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("SECRET_KEY", values["secret_key"])
    monkeypatch.setenv("ALLOWED_HOSTS", "api.example.com")
    monkeypatch.setenv("DATABASE_DSN", "sqlite+aiosqlite:////data/app.db")
    monkeypatch.setenv("WORKER_BROKER_DSN", "redis://redis.internal:6379/0")
    monkeypatch.setenv("AUTH_MODE", "jwt")
    monkeypatch.chdir(os.path.dirname(__file__))

    with pytest.raises(SystemExit, match="minting tokens is for development"):
        main(["token", "dora"])
