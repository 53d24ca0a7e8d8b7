"""The HTTP protocol `python -m app serve` runs: uvicorn's (httptools) with
bounds on each request's head.

uvicorn bounds neither the size of a request's head (request line and
headers) nor the time a client takes to send it: an endless header grows the
server's memory, and a client that sends its head slowly, or opens a
connection and sends nothing, holds it open for ever. Here:
- a head larger than SERVER_MAX_HEADER_BYTES is answered 431 and the
  connection closed;
- a head not complete SERVER_HEADER_TIMEOUT seconds after the connection
  opened, or after the previous response on a kept-alive connection, is
  answered 408 and the connection closed.
Between requests, uvicorn's keep-alive timeout (5 s) closes idle connections.

No option of uvicorn's does this, and switching servers for it would cost
more: uvicorn's h11 protocol bounds the size (not the time) at about twice
the CPU per request (`python -m benchmarks.overhead --protocols` measures
each). The ingress in front enforces the same bounds (RUNBOOK.md, "Request
limits"); these hold where a request reaches a pod directly.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.settings import load_settings


@functools.cache
def configured_limits() -> tuple[int, float]:
    """(SERVER_MAX_HEADER_BYTES, SERVER_HEADER_TIMEOUT), read once per process."""
    server = load_settings().server
    return server.max_header_bytes, server.header_timeout


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the head's size and time bounded.

    Like h11's bound, the size bound is on what is buffered while a head is
    incomplete: a complete head that arrives in one read is not refused (the
    ingress bounds each header line).
    """

    def limits(self) -> tuple[int, float]:
        return configured_limits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_head_bytes, self.head_timeout = self.limits()
        self.reading_head = False
        self.heads = 0  # heads begun on this connection
        self.head_bytes = 0
        self.head_deadline: asyncio.TimerHandle | None = None

    def connection_made(  # type: ignore[override]
        self, transport: asyncio.Transport
    ) -> None:
        super().connection_made(transport)
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        pending = self.heads if self.reading_head else None
        super().data_received(data)
        # Only a read that neither began nor ended the head counts in full
        # (one that began it may end a body: a pipelined request's).
        if self.reading_head and self.heads == pending:
            self.head_bytes += len(data)
            if self.head_bytes > self.max_head_bytes:
                self._refuse(431, "Request Header Fields Too Large")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self.reading_head:  # a kept-alive connection's next request
            self._await_head()

    def on_headers_complete(self) -> None:
        self._stop_waiting()
        super().on_headers_complete()

    def _await_head(self) -> None:
        self.reading_head = True
        self.heads += 1
        self.head_bytes = 0
        self.head_deadline = self.loop.call_later(self.head_timeout, self._too_slow)

    def _stop_waiting(self) -> None:
        self.reading_head = False
        if self.head_deadline is not None:
            self.head_deadline.cancel()
            self.head_deadline = None

    def _too_slow(self) -> None:
        self.head_deadline = None
        if self.reading_head:
            self._refuse(408, "Request Timeout")

    def _refuse(self, status: int, reason: str) -> None:
        self._stop_waiting()
        if self.transport.is_closing():
            return
        body = reason.encode("ascii")
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s"
            % (status, body, len(body), body)
        )
        self.transport.close()
