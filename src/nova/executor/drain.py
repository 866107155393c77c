"""Counting in-flight invocations so shutdown can wait for them to finish."""

from __future__ import annotations

import asyncio


class InflightTracker:
    """``begin()`` / ``end()`` around each invocation (a try/finally in the caller: on the hot
    path a generator-based context manager costs more than the counting)."""

    def __init__(self) -> None:
        self.count = 0
        self.closing = False
        self._idle = asyncio.Event()
        self._idle.set()

    def begin(self) -> None:
        self.count += 1
        self._idle.clear()

    def end(self) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def drain(self, timeout_s: float) -> bool:
        """Refuse new work and wait for running work; False if the timeout ran out first."""
        self.closing = True
        try:
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True
