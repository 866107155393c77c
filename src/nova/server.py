"""The HTTP server's lifecycle: serve, then on the first signal drain before closing the socket.

uvicorn stops listening as soon as it is signalled, so a request arriving during the drain
would be refused at the socket, which a client cannot tell from a dead daemon. Instead the
first SIGTERM / SIGINT keeps the listener open while in-flight invocations finish: new
invocations get 503 ``Daemon.ShuttingDown`` (and ``/health/ready`` says draining, so a load
balancer moves away). Once they are done, or ``shutdown_timeout_s`` has passed, uvicorn's own
shutdown runs with whatever time is left. A second SIGINT forces exit at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from types import FrameType

import uvicorn

logger = logging.getLogger("nova.daemon")

# Waits for in-flight invocations for up to the given seconds; True if they all finished.
Drain = Callable[[float], Awaitable[bool]]


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, drain: Drain, timeout_s: float) -> None:
        super().__init__(config)
        self._drain = drain
        self._timeout_s = timeout_s
        self._drain_requested = False
        self._draining: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Unlike uvicorn's, this does not re-raise the signal after shutdown: a daemon that
        # drained cleanly exits 0 instead of dying by SIGTERM / KeyboardInterrupt.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {
            sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._drain_requested:
            if sig == signal.SIGINT:
                logger.warning("second interrupt: exiting without waiting for invocations")
                self.force_exit = self.should_exit = True
            return  # a second SIGTERM changes nothing: the drain is bounded already
        self._drain_requested = True
        if self._loop is None or not self.started:
            self.should_exit = True  # still starting: nothing to drain
            return
        # Called between two bytecodes of the loop's thread: hand over to the loop.
        self._loop.call_soon_threadsafe(self._begin_drain)

    def _begin_drain(self) -> None:
        if self._draining is None:
            self._draining = asyncio.create_task(self._drain_then_exit(), name="drain")

    async def _drain_then_exit(self) -> None:
        started = time.monotonic()
        logger.info("draining: new invocations get 503 while in-flight ones finish")
        try:
            await self._drain(self._timeout_s)
        finally:
            left = self._timeout_s - (time.monotonic() - started)
            # uvicorn waits for open responses up to this; the drain already spent part of it.
            self.config.timeout_graceful_shutdown = max(1, int(left))
            self.should_exit = True
