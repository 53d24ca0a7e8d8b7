"""The worker's database, opened on the worker's event loop."""

from __future__ import annotations

import dramatiq
from dramatiq.middleware import Middleware
from sqlalchemy.ext.asyncio import AsyncEngine

from app import db, telemetry
from app.settings import Settings
from app.worker import sessions
from app.worker.loop import event_loop


class WorkerDatabase(Middleware):
    """Open the database on the worker's event loop at boot; close at shutdown."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine: AsyncEngine | None = None

    def before_worker_boot(
        self, broker: dramatiq.Broker, worker: dramatiq.Worker
    ) -> None:
        # Before the consumers start: a message may arrive at once.
        self.engine = db.create_engine(
            self.settings.database,
            f"{self.settings.service.name}-worker",
            hide_parameters=not self.settings.is_development,
        )
        telemetry.instrument_engine(self.engine)
        sessions.install(db.create_sessionmaker(self.engine))

    def after_worker_shutdown(
        self, broker: dramatiq.Broker, worker: dramatiq.Worker
    ) -> None:
        # Once running tasks have finished; the event loop is still up (see
        # create_broker for the order).
        if self.engine is not None:
            event_loop().run_coroutine(self.engine.dispose())
        sessions.install(None)
