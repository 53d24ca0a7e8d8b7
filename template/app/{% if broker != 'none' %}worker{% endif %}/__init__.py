"""Background tasks with Dramatiq.

Without a broker DSN (development, tests) tasks run in the API process on
Dramatiq's stub broker; with one, `python -m app.worker run` runs them on
Redis or RabbitMQ. Delivery is at least once: a task makes its effect happen
once with an idempotency key.

What a task author needs is here:

    from app.worker import exactly_once, task

    @task()
    async def publish_item(item_id: int, request_key: str) -> None:
        async with exactly_once(f"publish-item:{request_key}") as session:
            if session is None:
                return  # done before: a redelivered or duplicate message
            ...  # the effect, committed with the key

and in a route, `jobs: JobsDep` then `await jobs.send(publish_item, 1, key)`
after your commit. Name the task module in your plugin's `task_modules`
(app/plugins.py). `task_session()` is a plain session for a task.

The rest: `registry` (tasks, by name), `broker` (Dramatiq's broker from
WORKER_* settings), `jobs` (sending), `sessions` and `idempotency`,
`middleware/` (span, log lines, database, heartbeat, signals), `metrics`,
`runtime` (the in-process worker of the embedded default), `entry` (what a
worker process imports), `dead_letters` and `__main__` (the commands).
"""

from app.worker.idempotency import exactly_once, once
from app.worker.jobs import Jobs, JobsDep
from app.worker.registry import task
from app.worker.sessions import task_session

__all__ = ["Jobs", "JobsDep", "exactly_once", "once", "task", "task_session"]
