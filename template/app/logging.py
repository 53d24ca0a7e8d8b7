"""Logging through loguru: readable lines in development, JSON lines elsewhere.

Standard-library loggers (uvicorn, SQLAlchemy, alembic) are routed through
loguru, so every line carries service, environment, version and, inside a
request, the request id; inside a trace span, its trace and span ids.

The access line (one per request) is written by `AccessLog`: in JSON it is
built as a dict and serialised with orjson straight to the stream, about 1 µs
instead of loguru's 30 µs per line on the request path.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
import time
import traceback
import warnings
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO

import orjson
from loguru import logger
from opentelemetry import trace

if TYPE_CHECKING:
    from loguru import Message, Record

    from app.settings import Settings

TEXT_FORMAT = (
    "<green>{time:HH:mm:ss.SSS}</green> <level>{level: <8}</level> "
    "<cyan>{name}</cyan> {extra[request_id]} - <level>{extra[escaped]}</level>"
)
# Characters that would end a line or rewrite it in a terminal (a decoded
# `%0a` in a path, a newline in a token's claim): written escaped, so a
# caller cannot forge a line. JSON lines escape them already.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
# Inside a request, the fields its log lines carry: `request_id`, and
# `user_id` once the caller's token is verified. Set once per request by
# ObservabilityMiddleware and read by the patcher: `logger.contextualize`
# costs 4 µs a request, and the user is known only inside it.
REQUEST_FIELDS: ContextVar[dict[str, str] | None] = ContextVar(
    "request_fields", default=None
)


class InterceptHandler(logging.Handler):
    """Send standard-library log records to loguru (the recipe from its docs)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        frame: FrameType | None = logging.currentframe()
        depth = 0
        while frame is not None and (
            depth == 0 or frame.f_code.co_filename == logging.__file__
        ):
            frame = frame.f_back
            depth += 1
        logger.bind(logger=record.name).opt(depth=depth, exception=record.exc_info).log(
            level, record.getMessage()
        )


class JsonSink:
    """Writes one JSON object per line; cheaper than loguru's serialize=True."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def __call__(self, message: Message) -> None:
        self._stream.write(render_json(message.record) + "\n")
        # A container's stdout is a pipe: without a flush, lines wait in the
        # buffer and are lost if the process is killed.
        self._stream.flush()


def render_json(record: Record) -> str:
    """The JSON line for one record."""
    line: dict[str, Any] = {
        "time": record["time"].isoformat(),
        "level": record["level"].name,
        "message": record["message"],
        "logger": record["name"],
    }
    line.update(record["extra"])
    exception = record["exception"]
    if exception is not None:
        line["exception"] = {
            "type": getattr(exception.type, "__name__", str(exception.type)),
            "message": str(exception.value),
            "traceback": "".join(
                traceback.format_exception(
                    exception.type, exception.value, exception.traceback
                )
            ),
        }
    return json.dumps(line, default=str, ensure_ascii=False)


def escape_controls(text: str) -> str:
    """`text` with control characters written as escapes (`\\n`, `\\x1b`)."""
    return CONTROL_CHARACTERS.sub(lambda found: repr(found.group())[1:-1], text)


def text_format(record: Record) -> str:
    """Loguru format for text lines: the message escaped, the traceback
    (development's, for a person to read) as it is."""
    record["extra"]["escaped"] = escape_controls(record["message"])
    return TEXT_FORMAT + "\n{exception}"


def bind_user(user_id: str) -> None:
    """The request's later log lines carry `user_id` (app.auth calls it once
    the caller's token is verified)."""
    fields = REQUEST_FIELDS.get()
    if fields is not None:
        fields["user_id"] = user_id


def add_request_fields(record: Record) -> None:
    """Loguru patcher: the request's fields, and the current span's trace and
    span ids, if any."""
    if (fields := REQUEST_FIELDS.get()) is not None:
        extra = record["extra"]
        for name, value in fields.items():
            if extra.get(name, "-") == "-":  # a field bound by hand wins
                extra[name] = value
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        record["extra"]["trace_id"] = f"{span_context.trace_id:032x}"
        record["extra"]["span_id"] = f"{span_context.span_id:016x}"


class AccessLog:
    """One line per answered request (method, path, route, status, duration)."""

    def __init__(self, settings: Settings, stream: TextIO) -> None:
        self.stream = stream
        self.json = settings.log_json
        self.fields = {
            "service": settings.service.name,
            "environment": settings.environment.value,
            "version": settings.service.version,
        }
        self.second = -1
        self.prefix = ""
        self.colour = not self.json and stream.isatty()
        # The loop whose next step flushes what was written (None: nothing due).
        self.flush_due: asyncio.AbstractEventLoop | None = None

    def flush_soon(self) -> None:
        """Flush once the event loop's step ends: the lines of the requests
        answered in one step leave in one write (a write is about 10 µs), and
        none waits longer than that step. Without a running loop, at once."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.stream.flush()
            return
        if self.flush_due is not loop:
            self.flush_due = loop
            loop.call_soon(self.flush)

    def flush(self) -> None:
        self.flush_due = None
        self.stream.flush()

    def timestamp(self) -> str:
        """Now, as ISO 8601 in UTC to the microsecond; the date and time to
        the second are formatted once a second (2 µs saved a line)."""
        now = time.time()
        second = int(now)
        if second != self.second:
            self.second = second
            self.prefix = datetime.fromtimestamp(second, UTC).strftime(
                "%Y-%m-%dT%H:%M:%S"
            )
        return f"{self.prefix}.{int((now - second) * 1e6):06d}+00:00"

    def write(
        self,
        scope: Mapping[str, Any],
        request_id: str,
        route: str,
        status: int,
        seconds: float,
    ) -> None:
        method, path = scope["method"], scope["path"]
        duration_ms = round(seconds * 1000, 3)
        client = scope.get("client")
        if not self.json:
            # TEXT_FORMAT's layout, written directly (loguru's 70 µs a line
            # would be most of what a request costs the stack).
            now = time.time()
            clock = time.strftime("%H:%M:%S", time.localtime(now))
            stamp = f"{clock}.{int((now % 1) * 1000):03d}"
            message = f"{method} {escape_controls(path)} {status} {duration_ms} ms"
            if self.colour:
                stamp, message = f"\x1b[32m{stamp}\x1b[0m", f"\x1b[1m{message}\x1b[0m"
            self.stream.write(f"{stamp} INFO     access {request_id} - {message}\n")
            self.flush_soon()
            return
        span_context = trace.get_current_span().get_span_context()
        line: dict[str, Any] = {
            "time": self.timestamp(),
            "level": "INFO",
            "message": f"{method} {path} {status}",
            "logger": "access",
            **self.fields,
            "request_id": request_id,
            "method": method,
            "path": path,
            "route": route,
            "status": status,
            "duration_ms": duration_ms,
            "client": client[0] if client else None,
        }
        # Set by app.auth once the caller's token is verified.
        if user_id := scope.get("state", {}).get("user_id"):
            line["user_id"] = user_id
        if span_context.is_valid:
            line["trace_id"] = f"{span_context.trace_id:032x}"
            line["span_id"] = f"{span_context.span_id:016x}"
        self.stream.write(orjson.dumps(line).decode() + "\n")
        self.flush_soon()


# Only for access_log(), deprecated in 0.13.0 and removed in 0.14.0.
_configured_access_log: AccessLog | None = None


def access_log() -> AccessLog | None:
    """Deprecated: `configure_logging` returns the access log."""
    warnings.warn(
        "app.logging.access_log() is deprecated: configure_logging() returns"
        " the access log",
        DeprecationWarning,
        stacklevel=2,
    )
    return _configured_access_log


def configure_logging(
    settings: Settings, stream: TextIO | None = None
) -> AccessLog | None:
    """Install the sinks for these settings; safe to call more than once.

    Returns the access log for ObservabilityMiddleware (None when it is off).
    """
    global _configured_access_log
    target = stream or sys.stdout
    logger.remove()
    logger.configure(
        extra={
            "service": settings.service.name,
            "environment": settings.environment.value,
            "version": settings.service.version,
            "request_id": "-",
        },
        patcher=add_request_fields,
    )
    level = logger.level(settings.log.level).no
    access_on = settings.log.access and level <= logger.level("INFO").no
    if settings.log_json:
        logger.add(
            JsonSink(target),
            level=settings.log.level,
            format="{message}",
            backtrace=False,
            diagnose=False,
        )
    else:
        logger.add(
            target,
            level=settings.log.level,
            format=text_format,
            colorize=target.isatty(),
            backtrace=False,
            diagnose=False,
        )
    std_level = logging.getLevelNamesMapping().get(settings.log.level, logging.DEBUG)
    logging.basicConfig(handlers=[InterceptHandler()], level=std_level, force=True)
    for name in ("uvicorn", "uvicorn.error", "alembic"):
        std_logger = logging.getLogger(name)
        std_logger.handlers = []
        std_logger.propagate = True
    # AccessLog writes the access lines; uvicorn's own would be a second set.
    uvicorn_access = logging.getLogger("uvicorn.access")
    uvicorn_access.handlers = []
    uvicorn_access.propagate = False
    # alembic announces each of its plugins at INFO on every run.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    # SQLAlchemy logs every statement at INFO: keep it for DATABASE_ECHO only.
    echo = settings.database.echo
    logging.getLogger("sqlalchemy.engine").setLevel(
        logging.INFO if echo else logging.WARNING
    )
    _configured_access_log = AccessLog(settings, target) if access_on else None
    return _configured_access_log
