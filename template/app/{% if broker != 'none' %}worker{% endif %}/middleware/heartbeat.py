"""The worker's liveness: a file it touches while it runs."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import dramatiq
from dramatiq.middleware import Middleware


class Heartbeat(Middleware):
    """Touch a file while the worker runs: `python -m app.worker health` reads it."""

    def __init__(self, path: str, interval: float) -> None:
        self.path = Path(path)
        self.interval = interval
        self._stop = threading.Event()

    def after_worker_boot(
        self, broker: dramatiq.Broker, worker: dramatiq.Worker
    ) -> None:
        self._stop.clear()
        threading.Thread(target=self._beat, name="heartbeat", daemon=True).start()

    def before_worker_shutdown(
        self, broker: dramatiq.Broker, worker: dramatiq.Worker
    ) -> None:
        self._stop.set()

    def _beat(self) -> None:
        while not self._stop.is_set():
            self.path.write_text(f"{time.time():.3f}\n")
            self._stop.wait(self.interval)


def is_fresh(path: str, interval: float, now: float | None = None) -> bool:
    """Whether the heartbeat file was written within three intervals."""
    try:
        beat = float(Path(path).read_text().strip())
    except (OSError, ValueError):
        return False
    return (now or time.time()) - beat <= 3 * interval
