"""What the worker relies on in Dramatiq beyond its documented API, pinned.

A Dramatiq upgrade (Renovate's pull request) that changes one of these fails
here, naming the module to adapt, instead of somewhere the metrics quietly go
missing.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware.prometheus import Prometheus

from app.worker import dead_letters
from app.worker.metrics import METRICS, MULTIPROCESS_VARIABLES
from app.worker.runtime import InProcessMetrics


@pytest.fixture
def environment() -> Iterator[None]:
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.mark.usefixtures("environment")
def test_prometheus_middleware_still_makes_the_metrics_app_worker_metrics_reads() -> (
    None
):
    for name in MULTIPROCESS_VARIABLES:
        os.environ.pop(name, None)
    middleware = Prometheus()
    broker = StubBroker(middleware=[])
    middleware.after_process_boot(broker)  # type: ignore[no-untyped-call]
    missing = [name for name in METRICS if not hasattr(middleware, name)]
    assert not missing, f"app/worker/metrics.py METRICS: Dramatiq renamed {missing}"
    # The variables InProcessMetrics puts back after the boot (the API process
    # decides on prometheus-client's multiprocess mode itself).
    assert set(MULTIPROCESS_VARIABLES) <= set(
        os.environ
    ), "app/worker/metrics.py MULTIPROCESS_VARIABLES: Dramatiq sets others now"
    # Its exposition server runs in a forked process; the in-process worker
    # turns that off.
    assert middleware.forks, "Dramatiq's Prometheus middleware no longer forks"
    broker.close()


@pytest.mark.usefixtures("environment")
def test_the_in_process_metrics_fork_nothing_and_leave_the_environment() -> None:
    for name in MULTIPROCESS_VARIABLES:
        os.environ.pop(name, None)
    middleware = InProcessMetrics()
    broker = StubBroker(middleware=[])
    middleware.after_process_boot(broker)
    try:
        assert middleware.forks == []
        assert not set(MULTIPROCESS_VARIABLES) & set(os.environ)
    finally:
        middleware.after_worker_shutdown(broker, None)  # type: ignore[arg-type]
        broker.close()


def test_a_requeued_dead_letter_keeps_its_message_but_starts_its_retries_over() -> None:
    message: dramatiq.Message[object] = dramatiq.Message(
        queue_name="default",
        actor_name="app.things.tasks.do",
        args=(1,),
        kwargs={"b": 2},
        options={"retries": 5, "traceback": "boom", "request_id": "r-1"},
    )
    decoded = dramatiq.Message.decode(message.encode())

    fresh = dead_letters._fresh(decoded)

    assert fresh.message_id == message.message_id
    assert fresh.message_timestamp == message.message_timestamp
    assert (fresh.args, fresh.kwargs) == ((1,), {"b": 2})
    assert fresh.options == {"request_id": "r-1"}


def test_the_old_import_of_the_tasks_sessionmaker_warns_and_still_works() -> None:
    from app.worker import middleware, sessions

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = middleware.sessionmaker
    assert old is sessions.sessionmaker
    assert [w.category for w in caught] == [DeprecationWarning]
    assert "app.worker.task_session" in str(caught[0].message)
