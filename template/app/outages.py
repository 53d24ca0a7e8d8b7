"""An outage of a dependency, said once when it starts and once when it ends.

Requests that need a dependency that is down answer 503 (each of them); the
log says so once, not once per request, and says when it answers again.
"""

from __future__ import annotations

import time

from loguru import logger


class Outage:
    """Whether `dependency` is down, for one app (or worker) process."""

    # The error's message too, not only its class (the database's messages
    # may quote a statement: it logs the class alone).
    detailed = True

    def __init__(self, dependency: str, effect: str) -> None:
        self.dependency = dependency
        self.effect = effect  # what requests do meanwhile, for the log line
        self.since: float | None = None

    @property
    def is_down(self) -> bool:
        return self.since is not None

    def failed(self, error: BaseException) -> None:
        if self.since is None:
            self.since = time.monotonic()
            logger.warning(
                "{dependency} unreachable ({error}): {effect} until it is back",
                dependency=self.dependency,
                error=self.describe(error),
                effect=self.effect,
            )

    def recovered(self) -> None:
        if self.since is not None:
            logger.info(
                "{dependency} reachable again after {seconds:.1f} s",
                dependency=self.dependency,
                seconds=time.monotonic() - self.since,
            )
            self.since = None

    def describe(self, error: BaseException) -> str:
        name = type(error).__name__
        message = str(error).splitlines()[0][:200] if str(error) else ""
        return f"{name}: {message}" if self.detailed and message else name
