"""Logging through loguru: readable lines in development, JSON lines elsewhere.

Standard-library loggers (uvicorn, SQLAlchemy, alembic) are routed through
loguru, so every line carries service, environment, version and, inside a
request, the request id.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO

from loguru import logger

if TYPE_CHECKING:
    from loguru import Message, Record

    from app.settings import Settings

TEXT_FORMAT = (
    "<green>{time:HH:mm:ss.SSS}</green> <level>{level: <8}</level> "
    "<cyan>{name}</cyan> {extra[request_id]} - <level>{message}</level>"
)
# Fields every record carries; bound once at configuration time.
STATIC_FIELDS = ("service", "environment", "version")


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


def configure_logging(settings: Settings, stream: TextIO | None = None) -> None:
    """Install the sinks for these settings; safe to call more than once."""
    target = stream or sys.stdout
    logger.remove()
    logger.configure(
        extra={
            "service": settings.service.name,
            "environment": settings.environment.value,
            "version": settings.service.version,
            "request_id": "-",
        }
    )
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
            format=TEXT_FORMAT,
            colorize=target.isatty(),
            backtrace=False,
            diagnose=False,
        )
    std_level = logging.getLevelNamesMapping().get(settings.log.level, logging.DEBUG)
    logging.basicConfig(handlers=[InterceptHandler()], level=std_level, force=True)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "alembic"):
        std_logger = logging.getLogger(name)
        std_logger.handlers = []
        std_logger.propagate = True
    # alembic announces each of its plugins at INFO on every run.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    # SQLAlchemy logs every statement at INFO: keep it for DATABASE_ECHO only.
    echo = settings.database.echo
    logging.getLogger("sqlalchemy.engine").setLevel(
        logging.INFO if echo else logging.WARNING
    )
