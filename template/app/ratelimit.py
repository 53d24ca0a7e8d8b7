"""Rate limits per caller, as a route dependency (`Depends(RateLimit("write"))`).

The caller is the user id when a token was verified, otherwise the client
address (as uvicorn reports it: X-Forwarded-For is believed only from
SERVER_TRUSTED_PROXIES). Counters live in memory (one process) or, when
REDIS_DSN is set, in Redis, shared by every process and replica. The
`limits` library does the counting (sliding window counter).

Allowed responses carry `RateLimit-Limit`, `RateLimit-Remaining`,
`RateLimit-Reset` and `RateLimit-Policy`; refused ones answer 429 with the
same and `Retry-After`. If Redis fails, requests are let through: the limit
protects the service, it must not take it down. The log says so once per
outage (and once when Redis answers again), and while it is down one request
every 5 s tries it again; the others do not wait on its timeout.
Limit at the gateway instead when you need it before any request reaches a
Python process (floods, per-API-key quotas across services).
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

from fastapi import Request, Response
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError

from app.auth import MaybeUser
from app.errors import TooManyRequests
from app.outages import Outage
from app.settings import Settings
from app.state import state_of

Category = Literal["write", "login"]
# While the storage is down, how often a request tries it again.
RETRY_STORAGE_SECONDS = 5.0


class RateLimiter:
    """The limits of one app, over one storage."""

    def __init__(self, settings: Settings, storage: Storage) -> None:
        self.enabled = settings.ratelimit.enabled
        self.items: dict[str, RateLimitItem] = {
            "write": parse(settings.ratelimit.write),
            "login": parse(settings.ratelimit.login),
        }
        self.limiter = SlidingWindowCounterRateLimiter(storage)
        self.outage = Outage("rate limit storage", "requests are not rate limited")
        self.retry_at = 0.0

    async def check(self, category: str, caller: str) -> dict[str, str]:
        """Count one request; the headers to answer with, or TooManyRequests."""
        item = self.items[category]
        if self.outage.is_down:
            now = time.monotonic()
            if now < self.retry_at:
                return {}
            self.retry_at = now + RETRY_STORAGE_SECONDS  # this one tries
        try:
            allowed = await self.limiter.hit(item, category, caller)
            reset_at, remaining = await self.limiter.get_window_stats(
                item, category, caller
            )
        except StorageError as error:
            self.outage.failed(error)
            self.retry_at = time.monotonic() + RETRY_STORAGE_SECONDS
            return {}
        self.outage.recovered()
        reset = max(0, math.ceil(reset_at - time.time()))
        headers = {
            "RateLimit-Limit": str(item.amount),
            "RateLimit-Remaining": str(remaining),
            "RateLimit-Reset": str(reset),
            "RateLimit-Policy": f"{item.amount};w={item.get_expiry()}",
        }
        if not allowed:
            raise TooManyRequests(
                f"too many requests: the limit is {item}",
                headers={**headers, "Retry-After": str(max(1, reset))},
            )
        return headers


@asynccontextmanager
async def open_rate_limiter(settings: Settings) -> AsyncIterator[RateLimiter]:
    """Open the counters' storage for the app's lifetime."""
    if settings.redis_dsn is None:
        yield RateLimiter(settings, MemoryStorage())
        return
    from redis.asyncio import ConnectionPool

    pool = ConnectionPool.from_url(
        settings.redis_dsn, socket_timeout=1.0, socket_connect_timeout=1.0
    )
    storage = RedisStorage(
        "async+" + settings.redis_dsn,
        implementation="redispy",
        wrap_exceptions=True,
        key_prefix=f"ratelimit:{settings.service.name}",
        # limits types its options as scalars; redis-py takes the pool.
        connection_pool=pool,  # type: ignore[arg-type]
    )
    try:
        yield RateLimiter(settings, storage)
    finally:
        await pool.aclose()


class RateLimit:
    """A route dependency counting requests of one category per caller."""

    def __init__(self, category: Category) -> None:
        self.category = category

    async def __call__(
        self, request: Request, response: Response, user: MaybeUser
    ) -> None:
        limiter = state_of(request)["rate_limiter"]
        if not limiter.enabled:
            return
        if user is not None and user.authenticated:
            caller = f"user:{user.id}"
        else:
            client = request.client
            caller = f"address:{client.host if client else 'unknown'}"
        response.headers.update(await limiter.check(self.category, caller))
