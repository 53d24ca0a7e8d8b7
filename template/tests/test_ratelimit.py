"""Rate limits: per caller, 429 with Retry-After and RateLimit headers, and
shared by every app instance through Redis (TEST_REDIS_DSN)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from limits.aio.storage import MemoryStorage
from limits.errors import StorageError
from loguru import logger
from redis.asyncio import Redis

from app import ratelimit
from app.settings import Settings
from tests.fixtures.client import client_for
from tests.fixtures.identity import user_headers
from tests.fixtures.probe import NOTES, notes_app
from tests.fixtures.settings import make_settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """A database of this test's own (these apps commit)."""
    return f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"


def limited(url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database": {"dsn": url, "migrate_on_start": True},
        "ratelimit": {"write": "3/minute"},
    }
    return make_settings(url, **(values | overrides))


async def test_the_fourth_write_in_a_minute_is_refused(
    database_url: str,
) -> None:
    app_settings = limited(database_url)
    app = notes_app(app_settings)
    async with client_for(app, headers=user_headers(app_settings)) as client:
        answers = [await client.post(NOTES, json={"name": f"n{i}"}) for i in range(4)]
        reads = [await client.get(NOTES) for _ in range(5)]

    assert [a.status_code for a in answers] == [201, 201, 201, 429]
    assert [a.headers["ratelimit-remaining"] for a in answers] == ["2", "1", "0", "0"]
    refused = answers[-1]
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["ratelimit-limit"] == "3"
    assert refused.headers["ratelimit-policy"] == "3;w=60"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert 0 <= int(refused.headers["ratelimit-reset"]) <= 60
    # Reads are not write-limited.
    assert {r.status_code for r in reads} == {200}


async def test_each_caller_has_its_own_budget(
    database_url: str,
) -> None:
    # Users are told apart by their tokens (AUTH_MODE=none has one user).
    app_settings = limited(database_url, auth={"mode": "jwt"})
    app = notes_app(app_settings)
    async with client_for(app) as client:
        alice = user_headers(app_settings, "alice")
        bob = user_headers(app_settings, "bob")
        for i in range(3):
            await client.post(NOTES, json={"name": f"a{i}"}, headers=alice)
        alice_again = await client.post(NOTES, json={"name": "a9"}, headers=alice)
        bob_first = await client.post(NOTES, json={"name": "b0"}, headers=bob)

    assert alice_again.status_code == 429
    assert bob_first.status_code == 201


async def test_anonymous_callers_are_counted_by_address(
    database_url: str,
) -> None:
    # Callers without a token reach the limit with AUTH_MODE=none (and on
    # login-like routes); with jwt or oidc the API's guard answers 401 first.
    app = notes_app(limited(database_url, auth={"mode": "none"}))
    async with client_for(app) as client:
        answers = [await client.post(NOTES, json={"name": f"x{i}"}) for i in range(4)]

    assert [a.status_code for a in answers] == [201, 201, 201, 429]


async def test_limits_can_be_switched_off(
    database_url: str,
) -> None:
    app_settings = limited(
        database_url, ratelimit={"write": "1/minute", "enabled": False}
    )
    async with client_for(
        notes_app(app_settings), headers=user_headers(app_settings)
    ) as client:
        answers = [await client.post(NOTES, json={"name": f"o{i}"}) for i in range(3)]

    assert {a.status_code for a in answers} == {201}
    assert "ratelimit-limit" not in answers[0].headers


@pytest.fixture
async def shared_redis() -> AsyncIterator[tuple[str, str]]:
    """TEST_REDIS_DSN and a service name of this test's own: its counters are
    apart from every other run's, and only they are removed afterwards (other
    tests may be using the same Redis at the same time)."""
    dsn = os.environ.get("TEST_REDIS_DSN")
    if not dsn:
        pytest.skip("TEST_REDIS_DSN is not set")
    service = f"test-{uuid.uuid4().hex[:12]}"
    yield dsn, service
    client = Redis.from_url(dsn)
    async for key in client.scan_iter(f"ratelimit:{service}*"):
        await client.delete(key)
    await client.aclose()


@pytest.mark.redis
async def test_two_app_instances_share_the_limit_through_redis(
    database_url: str, shared_redis: tuple[str, str]
) -> None:
    redis_dsn, name = shared_redis
    shared = limited(database_url, redis_dsn=redis_dsn, service={"name": name})
    headers = user_headers(shared)
    # One after the other (an in-process worker is one per process): the
    # second instance starts with the first one's count.
    async with client_for(notes_app(shared), headers=headers) as one:
        answers = [await one.post(NOTES, json={"name": f"r{i}"}) for i in range(2)]
    async with client_for(notes_app(shared), headers=headers) as two:
        answers += [await two.post(NOTES, json={"name": f"s{i}"}) for i in range(2)]

    assert [a.status_code for a in answers] == [201, 201, 201, 429]
    assert answers[-1].headers["ratelimit-remaining"] == "0"


async def test_a_redis_outage_lets_requests_through_and_is_logged_once(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    closed = limited(
        database_url,
        redis_dsn="redis://127.0.0.1:9/0",
        log={"format": "json", "level": "INFO"},
    )
    async with client_for(notes_app(closed), headers=user_headers(closed)) as client:
        answers = [await client.post(NOTES, json={"name": f"d{i}"}) for i in range(4)]

    assert {a.status_code for a in answers} == {201}
    out = capsys.readouterr().out.splitlines()
    messages = [json.loads(line)["message"] for line in out if line.startswith("{")]
    said = [m for m in messages if m.startswith("rate limit storage")]
    assert len(said) == 1, said
    assert said[0].startswith("rate limit storage unreachable (StorageError: ")
    assert said[0].endswith("): requests are not rate limited until it is back")


async def test_while_the_storage_is_down_one_request_in_5_s_tries_it(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Others do not wait on its timeout; its return is logged once."""
    limiter = ratelimit.RateLimiter(limited(database_url), MemoryStorage())
    working = limiter.limiter.hit
    down = True
    tries = 0

    async def hit(*args: Any) -> bool:
        nonlocal tries
        tries += 1
        if down:
            raise StorageError(ConnectionError("refused"))
        return await working(*args)

    monkeypatch.setattr(limiter.limiter, "hit", hit)
    log_messages: list[str] = []
    sink = logger.add(lambda m: log_messages.append(m.record["message"]))
    try:
        during = [await limiter.check("write", "alice") for _ in range(3)]
        tries_during = tries
        limiter.retry_at -= ratelimit.RETRY_STORAGE_SECONDS  # 5 s later
        still_down = await limiter.check("write", "alice")
        down = False
        limiter.retry_at -= ratelimit.RETRY_STORAGE_SECONDS
        after = [await limiter.check("write", "alice") for _ in range(2)]
    finally:
        logger.remove(sink)

    assert during == [{}, {}, {}]
    assert tries_during == 1
    assert still_down == {}
    assert [headers["RateLimit-Remaining"] for headers in after] == ["2", "1"]
    assert tries == 4
    outage = [m for m in log_messages if m.startswith("rate limit storage")]
    assert len(outage) == 2, outage
    assert outage[0].startswith("rate limit storage unreachable (StorageError: ")
    assert outage[1].startswith("rate limit storage reachable again after ")
