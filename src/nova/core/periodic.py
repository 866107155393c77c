"""A background round every few seconds, for the daemon's housekeeping loops."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from nova.core.errors import NovaError


class Periodic:
    """Runs ``step`` every ``interval_s`` until closed. A step that fails with a NovaError
    (the store away, say) is logged at WARNING with ``failure`` and the next round tries
    again: one bad round never ends the loop."""

    def __init__(
        self,
        name: str,
        interval_s: float,
        step: Callable[[], Awaitable[object]],
        logger: logging.Logger,
        failure: str,
    ) -> None:
        self._name = name
        self._interval_s = interval_s
        self._step = step
        self._logger = logger
        self._failure = failure
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self._name)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self._step()
            except NovaError as exc:
                self._logger.warning("%s: %s", self._failure, exc.message)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
