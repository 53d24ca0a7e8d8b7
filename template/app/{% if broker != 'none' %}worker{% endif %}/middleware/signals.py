"""One graceful stop per signal, however the signal is sent."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware
from loguru import logger


class OneStopPerSignal(Middleware):
    """A worker process stops gracefully once per signal, however it is sent.

    Dramatiq's main process forwards SIGTERM (and SIGHUP) to each worker
    process, which takes a second one as "kill now". Sent to the whole process
    group or control group (systemd's default KillMode, `kill -- -PGID`), the
    signal reaches every worker process twice within milliseconds: Dramatiq would
    skip the graceful stop, keep taking messages, and never exit, as the
    event loop thread of async tasks holds the process open. Here a repeat
    within `window` seconds is the same stop; a later one kills the process
    at once, and the broker redelivers its unfinished messages.
    """

    def __init__(self, window: float = 2.0) -> None:
        self.window = window
        self._first: float | None = None

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        # Dramatiq installs its handlers before the broker boots.
        if threading.current_thread() is not threading.main_thread():
            return
        for name in ("SIGTERM", "SIGHUP"):  # SIGHUP: not on Windows
            number = getattr(signal, name, None)
            if number is None:
                continue
            previous = signal.getsignal(number)
            if callable(previous):
                signal.signal(number, self._once(previous))

    def _once(
        self, previous: Callable[[int, FrameType | None], Any]
    ) -> Callable[[int, FrameType | None], None]:
        def handler(number: int, frame: FrameType | None) -> None:
            now = time.monotonic()
            if self._first is None:
                self._first = now
                previous(number, frame)
            elif now - self._first >= self.window:
                try:
                    logger.warning(
                        "signalled again while stopping: killing the worker"
                        " process; the broker redelivers its unfinished messages"
                    )
                finally:  # loguru may refuse a call from inside its own
                    os._exit(1)

        return handler
