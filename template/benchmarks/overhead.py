"""What the service's stack costs an owner's route, against bare FastAPI.

    uv run python -m benchmarks.overhead [--seconds 3] [--rounds 5]
    uv run python -m benchmarks.overhead --layers
    uv run python -m benchmarks.overhead --protocols

The routes sit where an owner's routes sit: in a router of their own, listed
under /api/v1 like app/api/v1.py's (behind the API's guard, after the
template's own routes); in bare FastAPI, included in the app under the same
prefix. `/api/v1/bench/plain` returns a small JSON object;
`/api/v1/bench/db` runs one query (`SELECT 1`) on DATABASE_DSN (PostgreSQL,
say), or on an SQLite file.

Starts these servers with the same uvicorn settings (one process, uvloop, no
uvicorn access log), each sent the same requests (with a bearer token):
- `bare`: a FastAPI app with nothing else (the same database layer), on
  uvicorn's stock httptools protocol;
- `service`: `create_app()` as staging and production run it (request id,
  JSON access line, metrics, host and body checks, security headers, the
  API's guard with AUTH_MODE=none) on the protocol `python -m app serve`
  runs (app/server.py: the request head bounded);
- `jwt`: the same with AUTH_MODE=jwt: the token is checked on each request;
- `text log`: the same with development's text access line;
- `traced`: the same with tracing on (OTEL_TRACES_SAMPLER_ARG, default 0.1),
  exporting to a local OTLP endpoint that accepts and drops the spans.
With `--protocols`, the service instead on each HTTP protocol that could
serve it: uvicorn's stock httptools (no bounds), app/server.py's bounded
httptools, and uvicorn's h11 (size bounded at 16 KiB, time not); the ratio
and overhead are then against the stock protocol.

Each round loads each server in turn for `--seconds` over loopback (servers
on CPU 0, the load generator on CPU 1 where there are two). Printed per
server: requests/s, p50 and p99 latency, server CPU per request, and against
bare FastAPI the throughput ratio and the overhead in µs of CPU per request
(medians over rounds). Then the service's resident memory after 10,000 and
after 100,000 requests.

With `--layers`, no server: the apps are called in this process (ASGI calls,
CPU time per request, alternating rounds, medians), the service built up one
layer at a time, to show what each layer of the stack costs.
Figures are for this machine only: compare the lines, not the numbers across
machines.
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
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO

from fastapi import APIRouter, FastAPI
from sqlalchemy import text
from starlette.middleware.cors import CORSMiddleware
from starlette.types import Message

from app import db
from app.api import API_PREFIX
from app.auth import Authenticator
from app.db import SessionDep
from app.plugin import Plugin
from app.settings import Settings, load_settings

router = APIRouter(prefix="/bench")
PLAIN = f"{API_PREFIX}/bench/plain"
QUERY = f"{API_PREFIX}/bench/db"
USER = "bench-user"


@router.get("/plain")
async def plain() -> dict[str, bool]:
    """A trivial route."""
    return {"ok": True}


@router.get("/db")
async def one_query(session: SessionDep) -> dict[str, int]:
    """One query on the database."""
    return {"value": (await session.execute(text("SELECT 1"))).scalar_one()}


def service_app(settings: Settings | None = None) -> FastAPI:
    """The service as `python -m app serve` builds it, with the bench routes
    where an owner's are: a router listed under /api/v1 (a plugin's API
    routers sit beside app/api/v1.py's, after them)."""
    from app.main import create_app

    bench = Plugin(name="bench", api_routers=[router])
    return create_app(settings, extra_plugins=[bench])


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
    app.include_router(router, prefix=API_PREFIX)
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
    port: int,
    path: str,
    seconds: float,
    connections: int,
    limit: int = 10**9,
    token: str = "",
) -> list[float]:
    """Keep-alive GETs on `connections` connections; the latencies."""
    authorization = f"Authorization: Bearer {token}\r\n" if token else ""
    request = f"GET {path} HTTP/1.1\r\nHost: bench\r\n{authorization}\r\n".encode()
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


def measure(
    server: Server, path: str, seconds: float, connections: int, token: str
) -> Sample:
    cpu_before = server.cpu_seconds()
    started = time.perf_counter()
    latencies = load(server.port, path, seconds, connections, token=token)
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
    parser.add_argument(
        "--layers", action="store_true", help="what each layer costs, in process"
    )
    parser.add_argument("--calls", type=int, default=3000, help="per round, --layers")
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
        "AUTH_MODE": "none",
        "DATABASE_DSN": os.environ.get(
            "DATABASE_DSN", f"sqlite+aiosqlite:///{folder}/bench.db"
        ),
        "DATABASE_MIGRATE_ON_START": "false",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "",
    }
    # This process reads the same settings: the token, the in-process apps.
    os.environ.update(common)
    token = Authenticator(jwt_settings()).mint(USER)
    if args.layers:
        layers(args, token)
        return
    traced = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{spans.server_port}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_TRACES_SAMPLER_ARG": str(args.ratio),
    }
    service = "benchmarks.overhead:service_app"
    servers = [
        Server("bare", "benchmarks.overhead:bare_app", common),
        Server("service", service, common, BOUNDED),
        Server("jwt", service, {**common, "AUTH_MODE": "jwt"}, BOUNDED),
        Server("text log", service, {**common, "LOG_FORMAT": "text"}, BOUNDED),
        Server(f"traced {args.ratio * 100:g} %", service, {**common, **traced}, BOUNDED),
    ]  # fmt: skip
    if args.protocols:
        servers = [
            Server("httptools", service, common, STOCK),
            Server("bounded", service, common, BOUNDED),
            Server("h11", service, common, "h11"),
        ]
    paths = [PLAIN] if args.skip_db else [PLAIN, QUERY]
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
                load(server.port, path, args.warmup, args.connections, token=token)
            for round_ in range(args.rounds):
                # Each round in another order: no server always goes first.
                turn = round_ % len(servers)
                for server in servers[turn:] + servers[:turn]:
                    sample = measure(
                        server, path, args.seconds, args.connections, token
                    )
                    results[server.name].append(sample)
            report(path, results, args)
        if not args.protocols:
            memory(servers[1], args, token)
    finally:
        for server in servers:
            server.stop()
        spans.shutdown()


def jwt_settings() -> Settings:
    """This process's settings with AUTH_MODE=jwt (the `jwt` server's)."""
    settings = load_settings()
    auth = settings.auth.model_copy(update={"mode": "jwt"})
    return settings.model_copy(update={"auth": auth})


def layers(args: Any, token: str) -> None:
    """Bare FastAPI, then the service one layer at a time from the inside
    out, each called in this process (no server, no network: what is left
    is the stack's own CPU time)."""
    from app.middleware.api_guard import ApiGuardMiddleware
    from app.middleware.observability import ObservabilityMiddleware
    from app.middleware.security import SecurityMiddleware

    def service(settings: Settings | None = None, *without: object) -> FastAPI:
        app = service_app(settings)
        app.user_middleware = [m for m in app.user_middleware if m.cls not in without]
        return app

    edge_and_outer = (SecurityMiddleware, CORSMiddleware, ObservabilityMiddleware)
    builders: dict[str, Callable[[], FastAPI]] = {
        "bare": bare_app,
        "routes": lambda: service(None, ApiGuardMiddleware, *edge_and_outer),
        "+ API guard": lambda: service(None, *edge_and_outer),
        "+ edge": lambda: service(None, ObservabilityMiddleware),
        "+ observability": service,
        "+ jwt check": lambda: service(jwt_settings()),
    }
    headers = [(b"host", b"bench"), (b"authorization", f"Bearer {token}".encode())]

    async def run(quiet: TextIO) -> dict[str, list[float]]:
        samples: dict[str, list[float]] = {name: [] for name in builders}
        async with contextlib.AsyncExitStack() as stack:
            # The lines they write (start-up, access) go nowhere.
            with contextlib.redirect_stdout(quiet):
                apps = {name: build() for name, build in builders.items()}
                # One lifespan for the service's apps: what they open is the
                # same, and a process runs one in-process worker at a time
                # (Dramatiq keeps its event loop thread in a global).
                bare, full = apps["bare"], apps["+ observability"]
                bare_state = await stack.enter_async_context(
                    bare.router.lifespan_context(bare)
                )
                state = await stack.enter_async_context(
                    full.router.lifespan_context(full)
                )
            states = {name: dict(state or {}) for name in apps}
            states["bare"] = dict(bare_state or {})
            settings = jwt_settings()
            states["+ jwt check"].update(
                settings=settings, authenticator=Authenticator(settings)
            )
            for name, app in apps.items():
                await calls(app, states[name], headers, 1000)  # warm-up
            for _ in range(args.rounds):
                for name, app in apps.items():
                    started = time.process_time()
                    await calls(app, states[name], headers, args.calls)
                    used = time.process_time() - started
                    samples[name].append(used / args.calls * 1e6)
        return samples

    with open(os.devnull, "w") as quiet:
        samples = asyncio.run(run(quiet))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    print(
        f"GET {PLAIN} in process: {args.rounds} rounds x {args.calls} calls"
        " (medians of CPU µs per request)"
    )
    print(f"{'layer':<16} {'µs/req':>7} {'this layer':>10} {'over bare':>9}")
    previous = medians["bare"]
    for name, value in medians.items():
        print(
            f"{name:<16} {value:>7.1f} {value - previous:>+10.1f}"
            f" {value - medians['bare']:>+9.1f}"
        )
        # The jwt check is on top of the whole stack, as the others are.
        previous = value


async def calls(
    app: FastAPI, state: dict[str, Any], headers: list[tuple[bytes, bytes]], n: int
) -> None:
    """`n` GETs of PLAIN, straight to the ASGI app."""
    request: Message = {"type": "http.request", "body": b"", "more_body": False}

    async def receive() -> Message:
        return request

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] != 200:
            raise RuntimeError(f"GET {PLAIN} answered {message['status']}")

    for _ in range(n):
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "GET", "scheme": "http", "path": PLAIN,
            "raw_path": PLAIN.encode(), "root_path": "", "query_string": b"",
            "headers": headers, "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8000), "state": dict(state),
        }  # fmt: skip
        await app(scope, receive, send)
        # Each request ends an event loop step, as over HTTP (where the
        # access line is flushed).
        await asyncio.sleep(0)


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


def memory(server: Server, args: Any, token: str) -> None:
    first = 10_000
    load(server.port, PLAIN, 3600, args.connections, limit=first, token=token)
    at_first = server.rss_mib()
    rest = max(args.memory_requests - first, 0)
    load(server.port, PLAIN, 3600, args.connections, limit=rest, token=token)
    at_last = server.rss_mib()
    print(
        f"\nservice memory: {at_first:.1f} MiB after {first:,} requests,"
        f" {at_last:.1f} MiB after {args.memory_requests:,}"
        f" ({(at_last / at_first - 1) * 100:+.1f} %)"
    )


if __name__ == "__main__":
    main()
