"""Domain errors, and the one place that renders every error as RFC 9457
problem+json (`application/problem+json`) carrying the request id."""

from __future__ import annotations

import importlib
import math
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse

from app.compat.fastapi_routes import route_table

PROBLEM_JSON = "application/problem+json"


class Problem(BaseModel):
    """An error, as RFC 9457 problem details (documentation of the responses)."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    request_id: str | None = None


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for the problems a route can answer."""
    schema = {"$ref": "#/components/schemas/Problem"}
    return {
        status: {
            "model": Problem,
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_JSON: {"schema": schema}},
        }
        for status in statuses
    }


class AppError(Exception):
    """Base of the errors services raise; routers never build HTTP errors."""

    status: int = HTTPStatus.INTERNAL_SERVER_ERROR
    title: str = "Internal Server Error"
    headers: ClassVar[dict[str, str]] = {}

    def __init__(
        self, detail: str, *, headers: Mapping[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra
        self.response_headers = {**type(self).headers, **(headers or {})}


class NotFound(AppError):
    status = HTTPStatus.NOT_FOUND
    title = "Not Found"


class Conflict(AppError):
    status = HTTPStatus.CONFLICT
    title = "Conflict"


class NotAuthenticated(AppError):
    status = HTTPStatus.UNAUTHORIZED
    title = "Unauthorized"
    headers: ClassVar[dict[str, str]] = {"WWW-Authenticate": "Bearer"}


class PermissionDenied(AppError):
    status = HTTPStatus.FORBIDDEN
    title = "Forbidden"


class TooManyRequests(AppError):
    status = HTTPStatus.TOO_MANY_REQUESTS
    title = "Too Many Requests"


class ServiceUnavailable(AppError):
    """A dependency is down, or not configured. Raise it with
    `retry_after(seconds)` when trying again later can succeed."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    title = "Service Unavailable"


def retry_after(seconds: float) -> dict[str, str]:
    """The Retry-After header of a 503 for an outage."""
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_JSON


def problem(
    status: int,
    detail: str | None = None,
    *,
    request_id: str | None = None,
    title: str | None = None,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> ProblemResponse:
    """Build a problem+json response."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
    }
    if detail is not None:
        body["detail"] = detail
    if instance is not None:
        body["instance"] = instance
    if request_id is not None:
        body["request_id"] = request_id
    body.update(extra)
    return ProblemResponse(body, status_code=status, headers=headers)


def request_id_of(request: HTTPConnection) -> str | None:
    state = request.scope.get("state") or {}
    request_id = state.get("request_id")
    return request_id if isinstance(request_id, str) else None


def internal_error_response(request_id: str | None) -> ProblemResponse:
    """The 500 answer: nothing about the failure leaves the process."""
    return problem(
        HTTPStatus.INTERNAL_SERVER_ERROR,
        "The server failed to handle this request.",
        request_id=request_id,
    )


def route_path(request: HTTPConnection) -> str:
    """The path as the routes see it: below the root path (a proxy's
    prefix, `--root-path`), which the URL's path includes."""
    path, root = request.url.path, request.scope.get("root_path", "")
    if root and path.startswith(root):
        return path[len(root) :] or "/"
    return path


def allowed_methods(app: FastAPI, path: str) -> set[str]:
    """The methods of every route whose path matches (routers included)."""
    methods: set[str] = set()
    for entry in route_table(app):
        if entry.regex.match(path):
            methods |= entry.methods
    return methods


# What a 503 for an outage asks the caller to wait (the database's, the
# task queue's).
RETRY_AFTER_SECONDS = 5


def unreachable_kinds() -> list[type[Exception]]:
    """The errors an unreachable database raises into a request: SQLAlchemy's,
    the sockets', and (with PostgreSQL) asyncpg's own at connect time. Those
    that are a fault instead (a bad statement) still answer 500."""
    from sqlalchemy.exc import SQLAlchemyError

    kinds: list[type[Exception]] = [SQLAlchemyError, ConnectionError]
    try:
        asyncpg = importlib.import_module("asyncpg")
    except ImportError:  # SQLite only
        return kinds
    return [*kinds, asyncpg.PostgresError, asyncpg.InterfaceError]


class InvalidBody(StarletteHTTPException):
    """A 422 with validation errors, raised while the body is read: FastAPI
    passes on the HTTP errors of its body reading (other errors become a
    400 that names nothing)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(HTTPStatus.UNPROCESSABLE_ENTITY)
        self.errors = errors


def app_error_response(request: HTTPConnection, exc: AppError) -> ProblemResponse:
    """A domain error as problem+json."""
    return problem(
        exc.status,
        exc.detail,
        title=exc.title,
        request_id=request_id_of(request),
        instance=request.url.path,
        headers=exc.response_headers or None,
        **jsonable_encoder(exc.extra),
    )


def validation_error_response(
    request: HTTPConnection, errors: Sequence[Mapping[str, Any]]
) -> ProblemResponse:
    """422 naming each invalid field (pydantic's error dicts)."""
    return problem(
        HTTPStatus.UNPROCESSABLE_ENTITY,
        "The request is not valid.",
        request_id=request_id_of(request),
        instance=request.url.path,
        errors=[
            {
                "field": ".".join(str(part) for part in error["loc"]),
                "message": error["msg"],
                "type": error["type"],
            }
            for error in errors
        ],
    )


def body_not_json(request: Request, errors: Sequence[Mapping[str, Any]]) -> bool:
    """Whether a route that reads one JSON body got a body of another type
    (or none declared): FastAPI then parses no JSON, and the whole body fails
    as "not a valid dictionary". (A body left out is a 422 "missing".)"""
    if is_json_media(request.headers.get("content-type")):
        return False
    return any(
        tuple(error["loc"]) == ("body",) and error.get("type") != "missing"
        for error in errors
    )


def is_json_media(content_type: str | None) -> bool:
    """As FastAPI decides whether to parse a body as JSON."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def readable(exc: RequestValidationError) -> list[dict[str, Any]]:
    """The errors, with JSON that cannot be parsed said where: FastAPI puts
    the character's position in the field path (`body.8`)."""
    errors = []
    for error in exc.errors():
        if error.get("type") == "json_invalid" and isinstance(exc.body, str):
            position = error["loc"][-1]
            line = exc.body.count("\n", 0, position) + 1
            column = position - exc.body.rfind("\n", 0, position)
            reason = error.get("ctx", {}).get("error", "JSON decode error")
            error = {
                **error,
                "loc": ("body",),
                "msg": f"invalid JSON at line {line}, column {column}: {reason}",
            }
        errors.append(error)
    return errors


def register_exception_handlers(app: FastAPI) -> None:
    """Render domain, HTTP and validation errors as problem+json."""

    @app.exception_handler(AppError)
    async def app_error(request: Request, exc: AppError) -> ProblemResponse:
        return app_error_response(request, exc)

    @app.exception_handler(InvalidBody)
    async def invalid_body(request: Request, exc: InvalidBody) -> ProblemResponse:
        return validation_error_response(request, exc.errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(
        request: Request, exc: StarletteHTTPException
    ) -> ProblemResponse:
        headers = dict(exc.headers or {})
        # Starlette names only the first matching route's methods; a mount's
        # app (the docs' files) keeps its own answer.
        if exc.status_code == HTTPStatus.METHOD_NOT_ALLOWED and (
            methods := allowed_methods(request.app, route_path(request))
        ):
            headers["Allow"] = ", ".join(sorted(methods))
        return problem(
            exc.status_code,
            exc.detail if isinstance(exc.detail, str) else None,
            request_id=request_id_of(request),
            instance=request.url.path,
            headers=headers,
        )

    async def unreachable(request: Request, exc: Exception) -> ProblemResponse:
        from app.db import is_unreachable
        from app.state import state_of

        if not is_unreachable(exc):
            raise exc  # a fault, not an outage: the 500 path logs it
        state_of(request)["database_outage"].failed(exc)
        return problem(
            HTTPStatus.SERVICE_UNAVAILABLE,
            "the database cannot be reached; try again shortly",
            request_id=request_id_of(request),
            instance=request.url.path,
            headers=retry_after(RETRY_AFTER_SECONDS),
        )

    for kind in unreachable_kinds():
        app.add_exception_handler(kind, unreachable)

    @app.exception_handler(RequestValidationError)
    async def validation_error(
        request: Request, exc: RequestValidationError
    ) -> ProblemResponse:
        if body_not_json(request, exc.errors()):
            return problem(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                "the body must be JSON: send it with Content-Type: application/json",
                request_id=request_id_of(request),
                instance=request.url.path,
            )
        return validation_error_response(request, readable(exc))
