"""The worker's metrics: Dramatiq's, fit for alerts.

Only the worker's entry point and the in-process worker import this module:
Dramatiq's Prometheus middleware reads its port (`dramatiq_prom_port`) when
it is first imported, after `python -m app.worker run` has set it.
"""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.common import q_name
from dramatiq.middleware.prometheus import Prometheus

# What this module and app.worker.runtime rely on in Dramatiq's Prometheus
# middleware beyond its hooks, pinned by tests/worker/test_dramatiq_pins.py:
# the metrics it creates at process boot, by attribute name, and the
# environment variables it sets there.
COUNTERS = (
    "total_messages",
    "total_errored_messages",
    "total_retried_messages",
    "total_rejected_messages",
)
METRICS = (*COUNTERS, "inprogress_messages", "message_durations")
MULTIPROCESS_VARIABLES = ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir")


class TaskMetrics(Prometheus):
    """Dramatiq's metrics (`dramatiq_messages_total`, ...), fit for alerts.

    - Every declared task's counters exist from the worker's start at 0: a
      counter first scraped at 1 has no increase, so `TasksDeadLettered`
      would miss the first dead letter.
    - A retry counts once, under its queue. Dramatiq's middleware counts it
      when it goes to the delay queue (`default.DQ`) and again when it comes
      back (`default`).
    """

    def before_worker_boot(
        self, broker: dramatiq.Broker, worker: dramatiq.Worker
    ) -> None:
        for name in broker.get_declared_actors():
            self.after_declare_actor(broker, broker.get_actor(name))

    def after_declare_actor(
        self, broker: dramatiq.Broker, actor: dramatiq.Actor[Any, Any]
    ) -> None:
        if not hasattr(self, "total_messages"):  # before the process booted
            return
        labels = (actor.queue_name, actor.actor_name)
        for name in COUNTERS:
            getattr(self, name).labels(*labels)

    def after_enqueue(
        self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int | None
    ) -> None:
        # The Retries middleware enqueues a retry with a delay: count that.
        if delay is not None and "retries" in message.options:
            labels = (q_name(message.queue_name), message.actor_name)
            self.total_retried_messages.labels(*labels).inc()
