"""Worker settings (the `WORKER_*` variables)."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import NoDecode

BROKER_SCHEMES = ("redis://", "rediss://", "amqp://", "amqps://")


class WorkerSettings(BaseModel):
    """Broker, queue, retries and the worker's processes and shutdown."""

    # redis://host:6379/0 or amqp://user:<password>@host:5672/vhost; unset means
    # the in-process stub broker (development and tests only).
    broker_dsn: str | None = None
    queue: str = Field(default="default", pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    # Redis key prefix, so several services can share one Redis.
    namespace: str = Field(default="dramatiq", pattern=r"^[A-Za-z0-9_.:-]{1,100}$")
    # Task modules to run besides the plugins' (app/plugins.py), comma-separated.
    modules: Annotated[list[str], NoDecode] = []
    max_retries: int = Field(default=5, ge=0, le=100)
    min_backoff_ms: int = Field(default=1_000, ge=1)
    max_backoff_ms: int = Field(default=300_000, ge=1)
    time_limit_ms: int = Field(default=600_000, ge=1_000)
    processes: int = Field(default=2, ge=1, le=64)
    threads: int = Field(default=4, ge=1, le=256)
    # Seconds a stopping worker waits for running tasks; keep it below the
    # deployment's termination grace period (45 s in deploy/k8s).
    shutdown_timeout: float = Field(default=20.0, gt=0, le=3600)
    # Redis only: how long a crashed worker's unacknowledged messages wait
    # before redelivery, and how many broker commands in a million run that check.
    redis_heartbeat_timeout_ms: int = Field(default=60_000, ge=1_000)
    redis_maintenance_chance: int = Field(default=1_000, ge=1, le=1_000_000)
    metrics_port: int = Field(default=9191, ge=1, le=65535)
    # A liveness file, not shared data: /tmp is what it is for.
    health_file: str = "/tmp/worker-heartbeat"  # noqa: S108 # nosec B108
    heartbeat_interval: float = Field(default=5.0, gt=0, le=300)

    @field_validator("modules", mode="before")
    @classmethod
    def _split_modules(cls, value: object) -> object:
        if isinstance(value, str):
            return [module.strip() for module in value.split(",") if module.strip()]
        return value

    @field_validator("broker_dsn")
    @classmethod
    def _check_scheme(cls, dsn: str | None) -> str | None:
        if dsn is not None and not dsn.startswith(BROKER_SCHEMES):
            raise ValueError("must start with redis://, rediss://, amqp:// or amqps://")
        return dsn

    @model_validator(mode="after")
    def _check_backoff(self) -> Self:
        if self.min_backoff_ms > self.max_backoff_ms:
            raise ValueError("min_backoff_ms must not exceed max_backoff_ms")
        return self

    @property
    def uses_stub(self) -> bool:
        return self.broker_dsn is None

    def production_problems(self) -> list[str]:
        if self.uses_stub:
            return [
                "WORKER_BROKER_DSN must be set in production "
                "(the in-process stub broker loses tasks on restart)"
            ]
        return []
