"""The worker's Dramatiq middleware, one per module (besides Dramatiq's own,
which `app.worker.broker` adds): a trace span per message (`tracing`), its
log lines (`message_log`), the worker's database (`database`), its heartbeat
file (`heartbeat`), and one stop per signal (`signals`). The metrics
middleware is `app.worker.metrics`.
"""

from __future__ import annotations

import warnings
from typing import Any

from app.worker.middleware.database import WorkerDatabase
from app.worker.middleware.heartbeat import Heartbeat, is_fresh
from app.worker.middleware.message_log import MessageLogging, message_fields
from app.worker.middleware.signals import OneStopPerSignal
from app.worker.middleware.tracing import TaskTracing

__all__ = [
    "Heartbeat",
    "MessageLogging",
    "OneStopPerSignal",
    "TaskTracing",
    "WorkerDatabase",
    "is_fresh",
    "message_fields",
]


def __getattr__(name: str) -> Any:
    # Until 0.13.0 tasks took their sessions from here.
    if name == "sessionmaker":
        warnings.warn(
            "app.worker.middleware.sessionmaker moved: use app.worker.task_session()"
            " (or app.worker.sessions.sessionmaker)",
            DeprecationWarning,
            stacklevel=2,
        )
        from app.worker.sessions import sessionmaker

        return sessionmaker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
