"""The server's bounds on a request's head (app/server.py), on a real uvicorn
server and raw sockets, as slow or hostile clients send; and its responses,
one TCP segment each."""

from __future__ import annotations

import asyncio
import socket
import struct
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import APIRouter, Request

import app.__main__ as cli
from app.main import create_app
from app.server import FLUSH_AT, BoundedHttpToolsProtocol, OneWritePerStep
from tests.fixtures.network import free_port
from tests.fixtures.settings import make_settings

pytestmark = pytest.mark.anyio
MAX_HEAD = 4_096
HEAD_TIMEOUT = 0.5


class Tight(BoundedHttpToolsProtocol):
    def limits(self) -> tuple[int, float]:
        return MAX_HEAD, HEAD_TIMEOUT


slow_router = APIRouter()


@slow_router.get("/slow")
async def slow() -> dict[str, bool]:
    """Answers after twice the head's time bound."""
    await asyncio.sleep(2 * HEAD_TIMEOUT)
    return {"ok": True}


@pytest.fixture(scope="module")
async def port(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[int]:
    """The service on uvicorn with tight bounds, as `python -m app serve` runs
    (one for the module: each test opens connections of its own)."""
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('server') / 'app.db'}"
    settings = make_settings(url, database={"dsn": url, "migrate_on_start": True})
    app = create_app(settings)
    app.include_router(slow_router)
    chosen = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=chosen, http=Tight,
        log_config=None, access_log=False, timeout_keep_alive=5,
    )  # fmt: skip
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(30):
        while not server.started:
            if task.done():
                task.result()  # its error (the port taken, say)
                raise AssertionError("the server stopped before it started")
            await asyncio.sleep(0.01)
    yield chosen
    server.should_exit = True
    await task


async def read_response(reader: asyncio.StreamReader) -> bytes:
    """One response with a content-length: its head and body."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head + await reader.readexactly(length)


async def answer(reader: asyncio.StreamReader, seconds: float = 5) -> bytes:
    """Everything the server sends until it closes (or `seconds` pass)."""
    received = b""
    async with asyncio.timeout(seconds):
        while chunk := await reader.read(65_536):
            received += chunk
    return received


async def test_a_head_that_never_ends_is_answered_431_and_closed(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    start = b"GET /live HTTP/1.1\r\nHost: test\r\nX-Endless: "
    writer.write(start)
    sent = len(start)
    # Up to just past the bound, in separate reads as a slow sender's; more
    # would reach a closed socket, and its reset would drop the answer.
    while sent <= MAX_HEAD:
        await asyncio.sleep(0.01)
        writer.write(b"a" * 1_024)
        await writer.drain()
        sent += 1_024

    received = await answer(reader)
    assert received.startswith(b"HTTP/1.1 431 "), received[:80]
    assert received.endswith(b"Request Header Fields Too Large")
    writer.close()


async def test_a_slow_head_an_idle_connection_and_a_stalled_second_request_get_408(
    port: int,
) -> None:
    idle_reader, idle = await asyncio.open_connection("127.0.0.1", port)
    slow_reader, slow = await asyncio.open_connection("127.0.0.1", port)
    kept_reader, kept = await asyncio.open_connection("127.0.0.1", port)
    kept.write(b"GET /live HTTP/1.1\r\nHost: test\r\n\r\n")
    assert (await read_response(kept_reader)).startswith(b"HTTP/1.1 200 ")
    kept.write(b"GET /live HTTP/1.1\r\nHo")  # and no more
    # A bare CRLF between requests is skipped by the parser, and stops
    # uvicorn's keep-alive timer: the head's clock still runs.
    crlf_reader, crlf = await asyncio.open_connection("127.0.0.1", port)
    crlf.write(b"GET /live HTTP/1.1\r\nHost: test\r\n\r\n")
    assert (await read_response(crlf_reader)).startswith(b"HTTP/1.1 200 ")
    crlf.write(b"\r\n")

    async def trickle() -> None:
        try:
            for byte in b"GET /live HTTP/1.1\r\nHost: test\r\nX-Slow: 1234567890\r\n":
                slow.write(bytes([byte]))
                await asyncio.sleep(0.1)
        except ConnectionError:
            pass

    trickling = asyncio.create_task(trickle())
    answers = await asyncio.gather(
        answer(idle_reader),
        answer(slow_reader),
        answer(kept_reader),
        answer(crlf_reader),
    )
    trickling.cancel()

    for received in answers:
        assert received.startswith(b"HTTP/1.1 408 "), received[:80]
    for writer in (idle, slow, kept, crlf):
        writer.close()


async def test_a_pipelined_head_waits_for_the_response_before_it(port: int) -> None:
    """The head's time starts once nothing is due to the client: a slow
    response is delivered before the next, unfinished head's 408."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\nGET /live HTTP/1.1\r\nHo")

    first = await read_response(reader)
    rest = await answer(reader)

    assert first.startswith(b"HTTP/1.1 200 "), first[:80]
    assert first.endswith(b'{"ok":true}')
    assert rest.startswith(b"HTTP/1.1 408 "), rest[:80]
    writer.close()


async def test_ordinary_requests_pass_the_bounds(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    headers = b"".join(b"X-Big-%d: %s\r\n" % (n, b"b" * 300) for n in range(10))
    body = b"{" + b" " * 1_000_000 + b"}"
    for request in (
        b"GET /live HTTP/1.1\r\nHost: test\r\n" + headers + b"\r\n",
        # A body far above the head's bound, in the same reads as the head.
        b"POST /live HTTP/1.1\r\nHost: test\r\ncontent-type: application/json"
        b"\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body),
        b"GET /live HTTP/1.1\r\nHost: test\r\n\r\n",
    ):
        writer.write(request)
        response = await read_response(reader)
        assert response.split(b" ", 2)[1] in {b"200", b"405"}, response[:80]
    writer.close()


def test_serve_runs_the_bounded_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *_, **kwargs: ran.update(kwargs))

    cli.main(["serve"])

    assert ran["http"] == "app.server:BoundedHttpToolsProtocol"
    module, _, name = ran["http"].partition(":")
    assert getattr(__import__(module, fromlist=[name]), name) is (
        BoundedHttpToolsProtocol
    )


@contextmanager
def serving_in_thread(config: uvicorn.Config) -> Iterator[int]:
    """A real uvicorn server on a thread of its own, on a socket bound here
    (no other process can take its port first); its port. Stopped after."""
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [listening]}, daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive(), "the server stopped before it started"
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.01)
        yield int(listening.getsockname()[1])
    finally:
        server.should_exit = True
        thread.join(30)
        listening.close()


forwarded_router = APIRouter()


@forwarded_router.get("/seen-as")
async def seen_as(request: Request) -> dict[str, str]:
    """The client address and scheme the app was given."""
    assert request.client is not None
    return {"client": request.client.host, "scheme": request.url.scheme}


@pytest.mark.parametrize(
    ("trusted", "client", "scheme"),
    [
        ("127.0.0.1", "203.0.113.7", "https"),  # the proxy on loopback: believed
        ("10.0.0.1", "127.0.0.1", "http"),  # anyone else: ignored
    ],
)
def test_forwarded_headers_are_believed_only_from_trusted_proxies(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    trusted: str,
    client: str,
    scheme: str,
) -> None:
    """With the options `python -m app serve` gives uvicorn
    (SERVER_TRUSTED_PROXIES), on a real server."""
    ran: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *_, **kwargs: ran.update(kwargs))
    monkeypatch.setenv("SERVER_TRUSTED_PROXIES", trusted)
    cli.main(["serve"])
    url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    app = create_app(make_settings(url, database={"dsn": url}))
    app.include_router(forwarded_router)
    config = uvicorn.Config(
        app, log_config=None, access_log=False,
        proxy_headers=ran["proxy_headers"],
        forwarded_allow_ips=ran["forwarded_allow_ips"],
    )  # fmt: skip
    with serving_in_thread(config) as port:
        answer = httpx.get(
            f"http://127.0.0.1:{port}/seen-as",
            headers={"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"},
        )

    assert answer.json() == {"client": client, "scheme": scheme}


@pytest.mark.skipif(sys.platform != "linux", reason="TCP_INFO's counters: Linux")
def test_a_response_leaves_in_one_tcp_segment(tmp_path: Path) -> None:
    """uvloop 0.23 sends each write at once, and uvicorn writes a response's
    head and body apart: two segments a response, about 26 µs of CPU a
    request. Counted by the kernel on the client's connection, on uvloop as
    `python -m app serve` runs it."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    app = create_app(make_settings(url, database={"dsn": url}))
    config = uvicorn.Config(
        app, http=Tight, loop="uvloop", log_config=None, access_log=False
    )
    with (
        serving_in_thread(config) as port,
        socket.create_connection(("127.0.0.1", port), 5) as client,
    ):
        for _ in range(10):  # the connection's first segments
            get_live(client)
        before = segments_received(client)
        for _ in range(100):
            get_live(client)
        per_response = (segments_received(client) - before) / 100

    assert per_response == 1.0


def segments_received(client: socket.socket) -> int:
    """tcpi_segs_in of the kernel's struct tcp_info (Linux 4.2+)."""
    info = client.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    return int(struct.unpack_from("I", info, 140)[0])


def get_live(client: socket.socket) -> None:
    client.sendall(b"GET /live HTTP/1.1\r\nHost: test\r\n\r\n")
    received = b""
    while b"\r\n\r\n" not in received:
        received += client.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += client.recv(65536)


class Recorded:
    """A transport that records what is written to it."""

    def __init__(self) -> None:
        self.writes: list[list[bytes]] = []

    def writelines(self, chunks: list[bytes]) -> None:
        self.writes.append(chunks)

    def is_closing(self) -> bool:
        return False


async def test_writes_wait_for_the_end_of_the_step_up_to_64_kib() -> None:
    """A head and a small body leave together; a large body at once, so
    uvicorn's flow control sees it (a slow client pauses the response)."""
    recorded = Recorded()
    transport = OneWritePerStep(recorded)  # type: ignore[arg-type]

    transport.write(b"head")
    transport.write(bytearray(b"body"))
    written_in_the_step = list(recorded.writes)
    await asyncio.sleep(0)
    transport.write(b"x" * FLUSH_AT)

    assert written_in_the_step == []
    assert recorded.writes == [[b"head", b"body"], [b"x" * FLUSH_AT]]
