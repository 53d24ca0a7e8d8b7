"""The HTTP protocol `python -m app serve` runs: uvicorn's (httptools) with
bounds on each request's head.

uvicorn bounds neither the size of a request's head (request line and
headers) nor the time a client takes to send it: an endless header grows the
server's memory, and a client that sends its head slowly, or opens a
connection and sends nothing, holds it open for ever. Here:
- a head that has buffered more than SERVER_MAX_HEADER_BYTES while
  incomplete is answered 431 and the connection closed (a kept-alive
  connection's later heads may buffer one more read, at most 256 KiB);
- a head not complete SERVER_HEADER_TIMEOUT seconds after the connection
  opened, or after the previous response, is answered 408 and the
  connection closed, whatever the client sent meanwhile (a bare CRLF too).
Either answer is followed by a lingering close, as nginx does: the server
stops sending (FIN) and reads and drops what the client still sends for up
to LINGER_SECONDS before it closes. Closing at once would make the client's
kernel answer its next bytes with a reset, which can destroy the 408 or 431
before the client has read it.
Between requests, uvicorn's keep-alive timeout (5 s) closes idle connections
first. A head sent while an earlier response is still due (pipelining) waits
for that response before its time starts; one that grows too large then
lets the earlier response finish, and closes the connection after it.

A response's writes in one step of the event loop (its head and its body)
also leave in one write, so in one TCP segment: uvloop 0.23 sends each
write at once where 0.22 gathered them until the end of the step, which
doubled the segments per response (about 26 µs of CPU a request).

No option of uvicorn's does either, and switching servers for it would cost
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

# Bytes a response may have waiting for the end of the event loop's step.
FLUSH_AT = 64 * 1024


# How long a refused connection still reads (and drops) what the client sends.
LINGER_SECONDS = 2.0


@functools.cache
def configured_limits() -> tuple[int, float]:
    """(SERVER_MAX_HEADER_BYTES, SERVER_HEADER_TIMEOUT), read once per process."""
    server = load_settings().server
    return server.max_header_bytes, server.header_timeout


class OneWritePerStep:
    """A transport whose writes in one step of the event loop leave as one
    (`writelines`, one system call): uvicorn writes a response's head and
    body apart. Past FLUSH_AT bytes waiting, they leave at once, so the
    transport's flow control (uvicorn pauses a response while the client is
    behind) sees them. Anything else is the transport's own."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.pending: list[bytes] = []
        self.pending_bytes = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self.pending:
            asyncio.get_running_loop().call_soon(self.flush)
        # A copy of a mutable buffer: it is sent after the caller returns.
        chunk = data if isinstance(data, bytes) else bytes(data)
        self.pending.append(chunk)
        self.pending_bytes += len(chunk)
        if self.pending_bytes >= FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            pending, self.pending, self.pending_bytes = self.pending, [], 0
            if not self.transport.is_closing():
                self.transport.writelines(pending)

    def write_eof(self) -> None:
        self.flush()
        self.transport.write_eof()

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


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
        self.reading_head = False  # a head has begun and is not complete
        self.heads = 0  # heads begun on this connection
        self.head_bytes = 0
        self.head_deadline: asyncio.TimerHandle | None = None
        self.refused = False  # answered 408 or 431: lingering, then closed

    def connection_made(  # type: ignore[override]
        self, transport: asyncio.Transport
    ) -> None:
        super().connection_made(OneWritePerStep(transport))  # type: ignore[arg-type]
        self._begin_head()
        self._start_clock()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_clock()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return  # read and dropped until the lingering close ends
        pending = self.heads if self.reading_head else None
        super().data_received(data)
        # Only a read that neither began nor ended the head counts in full
        # (one that began it may end a body: a pipelined request's).
        if self.reading_head and self.heads == pending:
            self.head_bytes += len(data)
            if self.head_bytes > self.max_head_bytes:
                self._too_large()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self.reading_head:  # the connection's next request
            self._begin_head()

    def on_headers_complete(self) -> None:
        self.reading_head = False
        self._stop_clock()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Nothing more is due to the client: its next head's time starts.
        if not self.pipeline and not self.transport.is_closing():
            self._start_clock()

    def _begin_head(self) -> None:
        self.reading_head = True
        self.heads += 1
        self.head_bytes = 0

    def _responding(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _start_clock(self) -> None:
        self._stop_clock()
        self.head_deadline = self.loop.call_later(self.head_timeout, self._too_slow)

    def _stop_clock(self) -> None:
        if self.head_deadline is not None:
            self.head_deadline.cancel()
            self.head_deadline = None

    def _too_slow(self) -> None:
        self.head_deadline = None
        if not self._responding():
            self._refuse(408, "Request Timeout")

    def _too_large(self) -> None:
        self.reading_head = False
        if self._responding():
            # The earlier response finishes; read no more, close after it.
            self.cycle.keep_alive = False
            self.flow.pause_reading()
            return
        self._refuse(431, "Request Header Fields Too Large")

    def _refuse(self, status: int, reason: str) -> None:
        self._stop_clock()
        if self.transport.is_closing():
            return
        body = reason.encode("ascii")
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s"
            % (status, body, len(body), body)
        )
        self.refused = True
        self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)
