"""The worker's event loop thread (run by Dramatiq's AsyncIO middleware)."""

from __future__ import annotations

from dramatiq.asyncio import EventLoopThread, get_event_loop_thread


def event_loop() -> EventLoopThread:
    thread = get_event_loop_thread()
    if thread is None:
        raise RuntimeError("no event loop: the AsyncIO middleware has not started")
    return thread
