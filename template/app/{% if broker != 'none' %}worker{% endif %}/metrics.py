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
        for counter in (
            self.total_messages,
            self.total_errored_messages,
            self.total_retried_messages,
            self.total_rejected_messages,
        ):
            counter.labels(*labels)

    def after_enqueue(
        self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int | None
    ) -> None:
        # The Retries middleware enqueues a retry with a delay: count that.
        if delay is not None and "retries" in message.options:
            labels = (q_name(message.queue_name), message.actor_name)
            self.total_retried_messages.labels(*labels).inc()
