"""Background tasks with Dramatiq.

Without a broker DSN (development, tests) tasks run in the API process on
Dramatiq's stub broker; with one, `python -m app.worker run` runs them on
Redis or RabbitMQ. Delivery is at least once: tasks make their effect happen
once with an idempotency key (`app.worker.idempotency`).
"""
