"""What the service's stack costs per request, against bare FastAPI.

    uv run python -m benchmarks.overhead [--seconds 3] [--rounds 5]
    uv run python -m benchmarks.overhead --protocols

Starts three servers with the same uvicorn settings (one process, uvloop, no
uvicorn access log), each serving the same two routes:
- `bare`: a FastAPI app with nothing else (the same database layer), on
  uvicorn's stock httptools protocol;
- `service`: `create_app()` (request id, JSON access line, metrics, errors)
  on the protocol `python -m app serve` runs (app/server.py: the request
  head bounded);
- `traced`: the same with tracing on (OTEL_TRACES_SAMPLER_ARG, default 0.1),
  exporting to a local OTLP endpoint that accepts and drops the spans.
With `--protocols`, the service instead on each HTTP protocol that could
serve it: uvicorn's stock httptools (no bounds), app/server.py's bounded
httptools, and uvicorn's h11 (size bounded at 16 KiB, time not); the ratio
and overhead are then against the stock protocol.
`/bench/plain` returns a small JSON object; `/bench/db` runs one query
(`SELECT 1`) on DATABASE_DSN (PostgreSQL, say), or on an SQLite file.

Each round loads each server in turn for `--seconds` over loopback (servers
on CPU 0, the load generator on CPU 1 where there are two). Printed per
server: requests/s, p50 and p99 latency, server CPU per request, and against
bare FastAPI the throughput ratio and the overhead in µs of CPU per request
(medians over rounds). Then the service's resident memory after 10,000 and
after 100,000 requests. Figures are for this machine only: compare the lines,
not the numbers across machines.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from sqlalchemy import text

from app import db
from app.db import SessionDep
from app.settings import load_settings

router = APIRouter(prefix="/bench")


@router.get("/plain")
async def plain() -> dict[str, bool]:
    """A trivial route."""
    return {"ok": True}


@router.get("/db")
async def one_query(session: SessionDep) -> dict[str, int]:
    """One query on the database."""
    return {"value": (await session.execute(text("SELECT 1"))).scalar_one()}


def service_app() -> FastAPI:
    """The service as `python -m app serve` builds it, plus the bench routes."""
    from app.main import create_app

    app = create_app()
    app.include_router(router)
    # First in the route table, as in the bare app: FastAPI tries routes in
    # order, and this measures the stack, not the size of the route table.
    app.router.routes.insert(0, app.router.routes.pop())
    return app


def bare_app() -> FastAPI:
    """Bare FastAPI with the same routes and the same database layer."""
    settings = load_settings()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, Any]]:
        engine = db.create_engine(settings.database, settings.service.name)
        yield {
            "sessionmaker": db.create_sessionmaker(engine),
            "database_outage": db.Outage(),
        }
        await engine.dispose()

    app = FastAPI(lifespan=lifespan)
    app.include_router(router)
    return app


class DropSpans(BaseHTTPRequestHandler):
    """A no-op OTLP/HTTP endpoint: reads the export request, answers 200."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


STOCK = "httptools"
BOUNDED = "app.server:BoundedHttpToolsProtocol"


@dataclass
class Server:
    name: str
    factory: str
    env: dict[str, str]
    http: str = STOCK
    port: int = 0
    cpu: int | None = None
    process: subprocess.Popen[bytes] | None = None

    def start(self, cpu: int | None) -> None:
        """Launch the server; `wait_until_listening` waits for it (servers
        start at once: their imports are most of their start-up)."""
        self.port = free_port()
        command = [
            sys.executable, "-c",
            "import sys, uvicorn; uvicorn.run(sys.argv[1], factory=True,"
            " host='127.0.0.1', port=int(sys.argv[2]), loop='uvloop',"
            " http=sys.argv[3], access_log=False, log_level='warning')",
            self.factory, str(self.port), self.http,
        ]  # fmt: skip
        self.cpu = cpu
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter
            command,
            env={**os.environ, **self.env},
            stdout=subprocess.DEVNULL,  # JSON access lines: written, then dropped
            stderr=subprocess.PIPE,
        )

    def wait_until_listening(self) -> None:
        if self.process is None:
            raise RuntimeError(f"{self.name} was not started")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                self.pin()
                return
            except OSError:
                if self.process.poll() is not None:
                    error = (
                        self.process.stderr.read().decode()
                        if self.process.stderr
                        else ""
                    )
                    raise SystemExit(f"{self.name} did not start:\n{error}") from None
                time.sleep(0.1)
        raise SystemExit(f"{self.name} did not start within 30 s")

    def pin(self) -> None:
        """Every thread of the server on its CPU, once it listens (it starts
        on any CPU, beside the others)."""
        if self.cpu is None:
            return
        for thread in Path(f"/proc/{self.pid}/task").iterdir():
            with contextlib.suppress(ProcessLookupError):
                os.sched_setaffinity(int(thread.name), {self.cpu})

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError(f"{self.name} is not running")
        return self.process.pid

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1]
        utime, stime = fields.split()[11:13]
        return (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)


async def _connection(
    port: int, request: bytes, until: float, latencies: list[float], limit: int
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < until and len(latencies) < limit:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(head.split(b"\r\n", 1)[0].decode())
            latencies.append(time.perf_counter() - started)
    finally:
        writer.close()


def load(
    port: int, path: str, seconds: float, connections: int, limit: int = 10**9
) -> list[float]:
    """Keep-alive GETs on `connections` connections; the latencies."""
    request = f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    latencies: list[float] = []

    async def run() -> None:
        until = time.perf_counter() + seconds
        await asyncio.gather(
            *(
                _connection(port, request, until, latencies, limit)
                for _ in range(connections)
            )
        )

    try:
        import uvloop

        uvloop.run(run())
    except ImportError:
        asyncio.run(run())
    return latencies


@dataclass
class Sample:
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us: float


def measure(server: Server, path: str, seconds: float, connections: int) -> Sample:
    cpu_before = server.cpu_seconds()
    started = time.perf_counter()
    latencies = load(server.port, path, seconds, connections)
    elapsed = time.perf_counter() - started
    cpu = server.cpu_seconds() - cpu_before
    latencies.sort()
    return Sample(
        rps=len(latencies) / elapsed,
        p50_ms=latencies[len(latencies) // 2] * 1000,
        p99_ms=latencies[int(len(latencies) * 0.99)] * 1000,
        cpu_us=cpu / len(latencies) * 1e6,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.overhead")
    parser.add_argument("--seconds", type=float, default=3.0, help="per run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=float, default=1.0, help="s per server")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--ratio", type=float, default=0.1, help="trace sampling")
    parser.add_argument("--memory-requests", type=int, default=100_000)
    parser.add_argument("--skip-db", action="store_true")
    parser.add_argument(
        "--protocols", action="store_true", help="compare the HTTP protocols"
    )
    args = parser.parse_args(argv)

    two_cpus = (os.cpu_count() or 1) >= 2 and sys.platform == "linux"
    spans = ThreadingHTTPServer(("127.0.0.1", 0), DropSpans)
    threading.Thread(target=spans.serve_forever, daemon=True).start()
    folder = tempfile.mkdtemp(prefix="bench-")
    common = {
        "ENVIRONMENT": "staging",
        # Staging starts only on a key of its own and the hosts it serves.
        "SECRET_KEY": secrets.token_urlsafe(48),
        "ALLOWED_HOSTS": "bench",  # the Host the load sends
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "DATABASE_DSN": os.environ.get(
            "DATABASE_DSN", f"sqlite+aiosqlite:///{folder}/bench.db"
        ),
        "DATABASE_MIGRATE_ON_START": "false",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "",
    }
    traced = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{spans.server_port}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_TRACES_SAMPLER_ARG": str(args.ratio),
    }
    service = "benchmarks.overhead:service_app"
    servers = [
        Server("bare", "benchmarks.overhead:bare_app", common),
        Server("service", service, common, BOUNDED),
        Server(f"traced {args.ratio * 100:g} %", service, {**common, **traced}, BOUNDED),
    ]  # fmt: skip
    if args.protocols:
        servers = [
            Server("httptools", service, common, STOCK),
            Server("bounded", service, common, BOUNDED),
            Server("h11", service, common, "h11"),
        ]
    paths = ["/bench/plain"] if args.skip_db else ["/bench/plain", "/bench/db"]
    print(f"database: {common['DATABASE_DSN'].split('@')[-1]}")
    try:
        for server in servers:
            server.start(0 if two_cpus else None)
        for server in servers:
            server.wait_until_listening()
        if two_cpus:  # the load on CPU 1, the servers on CPU 0
            os.sched_setaffinity(0, {1})
        for path in paths:
            results: dict[str, list[Sample]] = {s.name: [] for s in servers}
            for server in servers:
                load(server.port, path, args.warmup, args.connections)
            for _ in range(args.rounds):
                for server in servers:
                    sample = measure(server, path, args.seconds, args.connections)
                    results[server.name].append(sample)
            report(path, results, args)
        if not args.protocols:
            memory(servers[1], args)
    finally:
        for server in servers:
            server.stop()
        spans.shutdown()


def report(path: str, results: dict[str, list[Sample]], args: Any) -> None:
    def median(name: str, field: str) -> float:
        values: list[float] = [getattr(s, field) for s in results[name]]
        return statistics.median(values)

    baseline = next(iter(results))  # bare FastAPI, or the stock protocol
    bare_rps, bare_cpu = median(baseline, "rps"), median(baseline, "cpu_us")
    print(
        f"\nGET {path}: {args.rounds} rounds x {args.seconds:g} s,"
        f" {args.connections} connections (medians)"
    )
    print(
        f"{'server':<12} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7}"
        f" {'CPU µs/req':>10} {'ratio':>6} {'overhead µs':>11}"
    )
    for name in results:
        rps, cpu = median(name, "rps"), median(name, "cpu_us")
        print(
            f"{name:<12} {rps:>8.0f} {median(name, 'p50_ms'):>7.2f}"
            f" {median(name, 'p99_ms'):>7.2f} {cpu:>10.1f} {rps / bare_rps:>6.2f}"
            f" {cpu - bare_cpu:>+11.1f}"
        )


def memory(server: Server, args: Any) -> None:
    first = 10_000
    load(server.port, "/bench/plain", 3600, args.connections, limit=first)
    at_first = server.rss_mib()
    rest = max(args.memory_requests - first, 0)
    load(server.port, "/bench/plain", 3600, args.connections, limit=rest)
    at_last = server.rss_mib()
    print(
        f"\nservice memory: {at_first:.1f} MiB after {first:,} requests,"
        f" {at_last:.1f} MiB after {args.memory_requests:,}"
        f" ({(at_last / at_first - 1) * 100:+.1f} %)"
    )


if __name__ == "__main__":
    main()
