"""Probes: /live (the process only), /ready (dependencies), /health (details,
guarded like /metrics). Check results are reused for HEALTH_CACHE_SECONDS."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from fastapi import APIRouter, Request
from loguru import logger
from starlette.responses import JSONResponse

from app import metrics
from app.errors import NotAuthenticated, NotFound, problem, request_id_of
from app.state import state_of

router = APIRouter(tags=["probes"])


@dataclass(frozen=True)
class Check:
    """A named readiness check: an awaitable that raises when unhealthy."""

    name: str
    run: Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    latency_ms: float
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "status": "ok" if self.ok else "fail",
            "latency_ms": round(self.latency_ms, 2),
        }
        if self.error is not None:
            result["error"] = self.error
        return result


async def run_check(check: Check, seconds: float) -> CheckResult:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(seconds):
            await check.run()
    except TimeoutError:
        error: str | None = f"timed out after {seconds:g} s"
        logger.warning("check {check} timed out", check=check.name)
    except Exception as exc:  # a failing dependency must not fail the probe
        # The probe is public: name the kind of failure, log the details.
        error = type(exc).__name__
        logger.opt(exception=exc).warning("check {check} failed", check=check.name)
    else:
        error = None
    elapsed = (time.perf_counter() - started) * 1000
    return CheckResult(check.name, error is None, elapsed, error)


class CheckRuns:
    """The checks' last results, reused for HEALTH_CACHE_SECONDS: a flood of
    probes runs each dependency's check once per period, and callers that
    arrive during a run wait for it instead of starting their own."""

    def __init__(self) -> None:
        self.finished_at = -float("inf")
        self.results: list[CheckResult] = []
        self.running: asyncio.Task[list[CheckResult]] | None = None

    async def results_for(
        self, checks: list[Check], seconds: float, max_age: float
    ) -> list[CheckResult]:
        """The results of at most `max_age` seconds ago, or of a new run in
        which each check may take `seconds`."""
        if time.monotonic() - self.finished_at < max_age:
            return self.results
        if self.running is None:
            self.running = asyncio.ensure_future(self._run(checks, seconds))
        return await asyncio.shield(self.running)

    async def _run(self, checks: list[Check], seconds: float) -> list[CheckResult]:
        try:
            results = list(
                await asyncio.gather(*(run_check(c, seconds) for c in checks))
            )
            metrics.record_checks((result.name, result.ok) for result in results)
            self.results, self.finished_at = results, time.monotonic()
            return results
        finally:
            self.running = None


async def run_checks(request: Request) -> list[CheckResult]:
    state = state_of(request)
    health = state["settings"].health
    return await state["check_runs"].results_for(
        state["checks"], health.check_timeout, health.cache_seconds
    )


@router.get("/live")
async def live() -> dict[str, str]:
    """Liveness: the process answers; never touches a dependency."""
    return {"status": "ok"}


@router.get("/ready", response_model=None)
async def ready(request: Request) -> dict[str, Any] | JSONResponse:
    """Readiness: every dependency answers within its timeout."""
    results = await run_checks(request)
    checks = {result.name: result.as_dict() for result in results}
    failed = [result.name for result in results if not result.ok]
    if failed:
        return problem(
            HTTPStatus.SERVICE_UNAVAILABLE,
            f"not ready: {', '.join(failed)} failed",
            request_id=request_id_of(request),
            checks=checks,
        )
    return {"status": "ok", "checks": checks}


@router.get("/health", response_model=None)
async def health(request: Request) -> dict[str, Any] | JSONResponse:
    """Health details: version, uptime and every check with its latency.

    Guarded like /metrics: with METRICS_TOKEN set, only for its bearer; in
    production without one, not served (404): the details name versions and
    failures an attacker would like to know. Probes use /live and /ready."""
    settings = state_of(request)["settings"]
    token = settings.metrics.token
    if token is None and settings.is_production:
        raise NotFound("/health needs METRICS_TOKEN in production")
    if not metrics.is_authorized(request.headers.get("authorization", ""), token):
        raise NotAuthenticated("a valid metrics token is needed")
    results = await run_checks(request)
    body: dict[str, Any] = {
        "status": "ok" if all(r.ok for r in results) else "fail",
        "service": settings.service.name,
        "version": settings.service.version,
        "template": settings.service.template,
        "environment": settings.environment.value,
        "uptime_s": round(time.monotonic() - state_of(request)["started_at"], 3),
        "checks": {result.name: result.as_dict() for result in results},
    }
    if body["status"] != "ok":
        return problem(
            HTTPStatus.SERVICE_UNAVAILABLE,
            "one or more checks failed",
            request_id=request_id_of(request),
            **{k: v for k, v in body.items() if k != "status"},
        )
    return body
