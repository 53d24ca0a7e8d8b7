"""Authentication: who is calling, from the bearer token (AUTH_MODE).

- `none`: every caller is the same anonymous user; a gateway in front
  authenticates (and nothing here does).
- `jwt`: HS256 tokens signed with SECRET_KEY, for calls between your own
  services. `python -m app token USER` mints one for local use.
- `oidc`: RS256/ES256 tokens of an identity provider, checked against its
  JWKS (fetched through the shared HTTP client, cached, fetched again when a
  token names an unknown key, at most every JWKS_MIN_REFRESH seconds).

The accepted algorithms are pinned per mode, so `alg: none` and HMAC-with-a-
public-key confusion are refused before any signature is checked; issuer,
audience, expiry (with a small leeway), `iat` and `sub` are required. The
subject must be a user id the service can store (1-200 printable
characters), and in jwt mode a token may not live longer than
AUTH_MAX_TOKEN_LIFETIME.
Routes depend on `CurrentUser` (a token is needed) or `Reader` (a token is
needed unless AUTH_PUBLIC_READS). The user id is bound to the request's log
lines, its access line and its trace span (`enduser.id`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any, cast

import httpx
import jwt
from fastapi import Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase
from fastapi.security.utils import get_authorization_scheme_param
from opentelemetry import trace
from starlette.requests import HTTPConnection

from app.errors import NotAuthenticated, ServiceUnavailable, retry_after
from app.logging import bind_user
from app.outages import Outage
from app.state import state_of

if TYPE_CHECKING:
    from app.settings import Settings

# A token naming an unknown key fetches the JWKS again, at most this often.
JWKS_MIN_REFRESH = 10.0
# The key types each algorithm family signs with.
KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
REQUIRED_CLAIMS = ["exp", "iat", "sub"]
# The longest user id a service stores (the owner columns are 200 wide).
MAX_SUBJECT_LENGTH = 200
# How many verified tokens a process remembers, and for how long at most
# (never past a token's `exp`, nor past a change of the provider's keys).
CHECKED_TOKENS = 4096
CHECKED_FOR = 300.0


@dataclass(frozen=True, slots=True)
class User:
    id: str
    authenticated: bool = True
    claims: Mapping[str, Any] = field(default_factory=dict)


ANONYMOUS = User(id="anonymous", authenticated=False)


def invalid_token(reason: str) -> NotAuthenticated:
    """401 with the RFC 6750 challenge naming what is wrong."""
    return NotAuthenticated(
        reason,
        headers={
            "WWW-Authenticate": f'Bearer error="invalid_token", error_description="{reason}"'
        },
    )


class JwksKeys:
    """An identity provider's signing keys, by key id."""

    def __init__(self, url: str, client: httpx.AsyncClient, max_age: float) -> None:
        self.url = url
        self.client = client
        self.max_age = max_age
        # key id -> (key, the algorithm the JWK declares, if it does)
        self.keys: dict[str | None, tuple[jwt.PyJWK, str | None]] = {}
        self.generation = 0  # how many times the keys were fetched
        self.fetched_at = -float("inf")
        # While the provider is down and no key is known: answer 503 at once.
        self.retry_at = -float("inf")
        self.lock = asyncio.Lock()
        self.outage = Outage(
            f"identity provider's keys ({url})",
            "tokens signed with a key not fetched yet answer 503",
        )

    async def key_for(self, kid: str | None, algorithm: str) -> Any:
        if time.monotonic() - self.fetched_at > self.max_age:
            await self._refresh(self.fetched_at)
        key = self._find(kid)
        if key is None and time.monotonic() - self.fetched_at >= JWKS_MIN_REFRESH:
            # Keys rotate: a new key id means fetching the set again.
            await self._refresh(self.fetched_at)
            key = self._find(kid)
        if key is None:
            raise invalid_token("the token's signing key is unknown")
        jwk, declared = key
        if (declared and declared != algorithm) or jwk.key_type != KEY_TYPES.get(
            algorithm[:2]
        ):
            raise invalid_token("the token's algorithm does not match its key")
        return jwk.key

    def _find(self, kid: str | None) -> tuple[jwt.PyJWK, str | None] | None:
        if kid is None and len(self.keys) == 1:
            return next(iter(self.keys.values()))
        return self.keys.get(kid)

    async def _refresh(self, seen: float) -> None:
        if not self.keys and time.monotonic() < self.retry_at:
            raise ServiceUnavailable(
                "the identity provider's keys cannot be fetched",
                headers=retry_after(self.retry_at - time.monotonic()),
            )
        async with self.lock:
            if self.fetched_at != seen:
                return  # another request fetched it meanwhile
            try:
                response = await self.client.get(self.url)
                response.raise_for_status()
                keys = _signing_keys(response.json())
            except (httpx.HTTPError, ValueError) as error:
                self.outage.failed(error)
                if not self.keys:
                    self.retry_at = time.monotonic() + JWKS_MIN_REFRESH
                    raise ServiceUnavailable(
                        "the identity provider's keys cannot be fetched",
                        headers=retry_after(JWKS_MIN_REFRESH),
                    ) from None
                # Keep the keys we have; try again after JWKS_MIN_REFRESH.
                self.fetched_at = time.monotonic() - self.max_age + JWKS_MIN_REFRESH
                return
            self.keys = keys
            self.generation += 1
            self.fetched_at = time.monotonic()
            self.outage.recovered()


def _signing_keys(jwks: Any) -> dict[str | None, tuple[jwt.PyJWK, str | None]]:
    """The usable signing keys of a JWKS document (others are skipped)."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise ValueError("not a JWKS document")
    keys = {}
    for data in jwks["keys"]:
        if not isinstance(data, dict) or data.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(data)
        except jwt.PyJWTError:
            continue
        keys[key.key_id] = (key, data.get("alg"))
    if not keys:
        raise ValueError("the JWKS has no usable signing key")
    return keys


class Authenticator:
    """Turns a bearer token into a `User`, for one app (built by the lifespan)."""

    def __init__(
        self, settings: Settings, client: httpx.AsyncClient | None = None
    ) -> None:
        auth = settings.auth
        self.mode = auth.mode
        self.public_reads = auth.public_reads
        self.leeway = auth.leeway
        self.issuer = auth.issuer or settings.service.name
        self.audience = auth.audience or settings.service.name
        self.secret = settings.secret_key.get_secret_value()
        # jwt mode: a token may not live longer than this (oidc: the provider's).
        self.max_lifetime = auth.max_token_lifetime
        self.jwks: JwksKeys | None = None
        # Tokens already verified (a check costs PyJWT about 100 µs), each
        # until its `exp` and for CHECKED_FOR seconds at most, while the
        # keys that verified it are current; CHECKED_TOKENS of them at most.
        self.checked: dict[str, tuple[User, float, int]] = {}
        # Development may start in oidc mode before the provider is set up.
        self.missing = auth.missing
        if auth.mode == "oidc":
            self.algorithms = list(auth.algorithms)
            if auth.jwks_url and client is not None:
                self.jwks = JwksKeys(auth.jwks_url, client, auth.jwks_cache_seconds)
            elif client is None:
                raise ValueError("AUTH_MODE=oidc needs an HTTP client for the JWKS")
        else:
            self.algorithms = ["HS256"]

    async def authenticate(self, token: str) -> User:
        if self.missing:
            raise ServiceUnavailable(
                f"tokens cannot be checked: AUTH_MODE=oidc needs {', '.join(self.missing)}"
            )
        checked = self.checked.get(token)
        if checked is not None:
            user, until, keys = checked
            if time.time() < until and keys == self.key_generation():
                return user
            del self.checked[token]
        user = await self._verify(token)
        if len(self.checked) >= CHECKED_TOKENS:
            del self.checked[next(iter(self.checked))]  # the oldest
        until = min(float(user.claims["exp"]), time.time() + CHECKED_FOR)
        self.checked[token] = (user, until, self.key_generation())
        return user

    def key_generation(self) -> int:
        """Which signing keys verified a token: a token remembered under
        keys the identity provider has since replaced is checked again."""
        return self.jwks.generation if self.jwks is not None else 0

    async def _verify(self, token: str) -> User:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise invalid_token("the token is malformed") from None
        algorithm = header.get("alg")
        if algorithm not in self.algorithms:
            raise invalid_token("the token's algorithm is not accepted")
        if self.jwks is not None:
            key = await self.jwks.key_for(header.get("kid"), algorithm)
        else:
            key = self.secret
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise invalid_token("the token has expired") from None
        except jwt.InvalidTokenError as error:
            raise invalid_token(_reason(error)) from None
        lifetime = int(claims["exp"]) - int(claims["iat"])  # PyJWT checked both
        if self.jwks is None and lifetime > self.max_lifetime:
            raise invalid_token(
                "the token lives longer than AUTH_MAX_TOKEN_LIFETIME allows"
            )
        # Read-only: a remembered caller is shared by its requests.
        return User(id=_subject(claims), claims=MappingProxyType(claims))

    def mint(self, subject: str, minutes: int = 60, **claims: Any) -> str:
        """A token for `subject` (jwt mode: local use and tests)."""
        if self.mode != "jwt":
            raise ValueError("tokens can only be minted in AUTH_MODE=jwt")
        if minutes * 60 > self.max_lifetime:
            raise ValueError(
                f"a token may live at most {self.max_lifetime // 60} minutes"
                " (AUTH_MAX_TOKEN_LIFETIME)"
            )
        now = int(time.time())
        payload = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "iat": now,
            "exp": now + minutes * 60,
            **claims,
        }
        return jwt.encode(payload, self.secret, algorithm="HS256")


def _subject(claims: Mapping[str, Any]) -> str:
    """The user id: a string the service can store and log as it is."""
    subject = claims["sub"]
    if (
        not isinstance(subject, str)
        or not 0 < len(subject) <= MAX_SUBJECT_LENGTH
        or not subject.isprintable()
    ):
        raise invalid_token("the token's subject is not a user id")
    return subject


def _reason(error: jwt.InvalidTokenError) -> str:
    if isinstance(error, jwt.InvalidIssuerError):
        return "the token's issuer is not accepted"
    if isinstance(error, jwt.InvalidAudienceError):
        return "the token's audience is not accepted"
    if isinstance(error, jwt.MissingRequiredClaimError):
        return f"the token has no {error.claim!r} claim"
    if isinstance(error, jwt.ImmatureSignatureError):
        return "the token is not valid yet"
    if isinstance(error, jwt.InvalidSignatureError):
        return "the token's signature is not valid"
    return "the token is not valid"


# Where a request keeps its caller once checked: in its scope, not its state,
# whose names a plugin's values share.
CALLER = "app.auth.caller"


async def caller(connection: HTTPConnection) -> User | None:
    """The caller if a token is sent (a bad token is refused), else None.

    Checked once per request: the API's guard (app/middleware/api_guard.py)
    asks first, `CurrentUser` after it."""
    scope = connection.scope
    if CALLER in scope:
        return cast("User | None", scope[CALLER])
    state = state_of(connection)
    authenticator = state["authenticator"]
    user: User | None = None
    if authenticator.mode == "none":
        user = ANONYMOUS
    else:
        # As fastapi.security.HTTPBearer reads it.
        scheme, token = get_authorization_scheme_param(
            connection.headers.get("authorization")
        )
        if scheme.lower() == "bearer" and token:
            user = await authenticator.authenticate(token)
            state["user_id"] = user.id
            bind_user(user.id)
            trace.get_current_span().set_attribute("enduser.id", user.id)
    scope[CALLER] = user
    return user


async def authenticated(connection: HTTPConnection) -> User | None:
    """The caller; without a token, 401 (GET and HEAD, and a WebSocket's GET,
    are let through while AUTH_PUBLIC_READS is on). The API's guard calls it
    for every route under /api/v1, even a route that forgot `CurrentUser`."""
    user = await caller(connection)
    if user is None and not (
        state_of(connection)["authenticator"].public_reads
        and connection.scope.get("method", "GET") in ("GET", "HEAD")
    ):
        raise NotAuthenticated("a bearer token is needed")
    return user


class BearerToken(SecurityBase):
    """`caller` as a dependency, and the security scheme the OpenAPI document
    declares for the routes that use it."""

    def __init__(self) -> None:
        self.model = HTTPBearerModel(
            description="A JWT: `Authorization: Bearer <token>`."
        )
        self.scheme_name = "HTTPBearer"

    async def __call__(self, connection: HTTPConnection) -> User | None:
        return await caller(connection)


bearer = BearerToken()


async def current_user(user: Annotated[User | None, Depends(bearer)]) -> User:
    if user is None:
        raise NotAuthenticated("a bearer token is needed")
    return user


async def reader(
    request: Request, user: Annotated[User | None, Depends(bearer)]
) -> User | None:
    """The caller, or None (anyone may read) when AUTH_PUBLIC_READS is on."""
    if state_of(request)["authenticator"].public_reads:
        return None
    return await current_user(user)


CurrentUser = Annotated[User, Depends(current_user)]
MaybeUser = Annotated[User | None, Depends(bearer)]
Reader = Annotated[User | None, Depends(reader)]
# The API's guard as a dependency, for a router of yours outside /api/v1
# (FastAPI solves a dependency at about 20 µs a request: the API's guard is
# app/middleware/api_guard.py instead).
AUTHENTICATED = Depends(authenticated)
# `bearer` under its name before v0.10.0.
token_user = bearer


def document_security(app: FastAPI, mode: str, prefix: str) -> None:
    """The OpenAPI document as the guard enforces it: every operation under
    `prefix` asks for a bearer token (the guard is middleware, which FastAPI
    does not see); with AUTH_MODE=none, no operation does (none is read)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        schemes = document.setdefault("components", {}).setdefault(
            "securitySchemes", {}
        )
        for path, operations in document.get("paths", {}).items():
            guarded = path == prefix or path.startswith(prefix + "/")
            for operation in operations.values():
                if mode == "none":
                    operation.pop("security", None)
                    operation.get("responses", {}).pop("401", None)
                elif guarded and {bearer.scheme_name: []} not in operation.setdefault(
                    "security", []
                ):
                    operation["security"].append({bearer.scheme_name: []})
        if mode == "none":
            schemes.clear()
        else:
            schemes[bearer.scheme_name] = jsonable_encoder(
                bearer.model, by_alias=True, exclude_none=True
            )
        if not schemes:
            del document["components"]["securitySchemes"]
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
