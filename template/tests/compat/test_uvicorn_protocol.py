"""uvicorn: its httptools protocol (`uvicorn.protocols.http.httptools_impl`,
not a public API), which app/server.py's BoundedHttpToolsProtocol extends.
These tests pin the hooks it overrides and the state it reads, so a uvicorn
upgrade that changes them fails here, naming them; tests/test_server.py
checks the bounds themselves over real connections."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.types import Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

pytestmark = pytest.mark.anyio


async def ok(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


class Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def write(self, data: Any) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def close(self) -> None:
        pass


class Recording(HttpToolsProtocol):
    """Records the hooks app/server.py overrides, in the order they run."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hooks: list[str] = []

    def on_message_begin(self) -> None:
        self.hooks.append("on_message_begin")
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self.hooks.append("on_headers_complete")
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        self.hooks.append("on_response_complete")
        super().on_response_complete()


async def test_the_hooks_run_in_order_and_the_state_read_is_there() -> None:
    config = Config(app=ok, log_config=None, lifespan="off")
    protocol = Recording(config, ServerState(), {}, _loop=asyncio.get_running_loop())
    transport = Transport()
    protocol.connection_made(transport)

    assert protocol.transport is transport
    assert protocol.loop is asyncio.get_running_loop()
    assert protocol.cycle is None
    assert not protocol.pipeline

    protocol.data_received(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n")
    cycle = protocol.cycle
    assert cycle.keep_alive is True
    assert cycle.response_complete is False
    for _ in range(100):
        if cycle.response_complete:
            break
        await asyncio.sleep(0)

    assert cycle.response_complete
    assert protocol.hooks == [
        "on_message_begin",
        "on_headers_complete",
        "on_response_complete",
    ]
    assert transport.written.startswith(b"HTTP/1.1 200 OK")
    protocol.flow.pause_reading()
    assert not transport.reading
    protocol.connection_lost(None)
