"""What each worker process imports: `dramatiq app.worker.entry:broker`.

Building the broker here, at import, is this module's whole purpose (it is
Dramatiq's entry point); nothing else imports it.
"""

from app import models  # noqa: F401 - every table, so foreign keys resolve
from app.logging import configure_logging
from app.plugins import PLUGINS
from app.settings import load_settings
from app.telemetry import Tracing
from app.worker import registry
from app.worker.broker import create_broker
from app.worker.metrics import TaskMetrics
from app.worker.middleware.database import WorkerDatabase
from app.worker.middleware.heartbeat import Heartbeat
from app.worker.middleware.signals import OneStopPerSignal
from app.worker.middleware.tracing import TaskTracing

settings = load_settings()
configure_logging(settings)
# Your plugins' task modules, then WORKER_MODULES. The template's own plugins
# (app.main) carry none, and a test keeps it so: importing app.main here would
# load the API's metrics before Dramatiq's process boot switches
# prometheus-client to its multiprocess mode.
registry.load(registry.task_modules(PLUGINS, settings.worker.modules))
broker = create_broker(
    settings.worker,
    extra_middleware=[
        WorkerDatabase(settings),
        Heartbeat(settings.worker.health_file, settings.worker.heartbeat_interval),
        TaskMetrics(),
        OneStopPerSignal(),
    ],
    tracing=TaskTracing(Tracing(settings) if settings.otel.enabled else None),
)
