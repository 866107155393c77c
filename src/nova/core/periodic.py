"""A background round every few seconds, for the daemon's housekeeping loops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from nova.core.errors import NovaError

# How long close() lets a round in progress finish before cancelling it: past SQLite's busy
# wait (15 s), so a round waiting for the write lock ends by itself.
CLOSE_GRACE_S = 20.0


class Periodic:
    """Runs ``step`` every ``interval_s`` (the first round at once with ``immediately``) until
    closed. A step that fails with a NovaError
    (the store away, say) is logged at WARNING with ``failure`` and the next round tries
    again: one bad round never ends the loop.

    Closing stops the loop between rounds: a round is not cancelled in the middle, because a
    store transaction cut at an await can leave its connection holding SQLite's write lock
    (the rollback is cancelled with it), and every later write then waits out the busy
    timeout and fails — at shutdown, the last flushes of counters and audit entries."""

    def __init__(
        self,
        name: str,
        interval_s: float,
        step: Callable[[], Awaitable[object]],
        logger: logging.Logger,
        failure: str,
        *,
        immediately: bool = False,
    ) -> None:
        self._name = name
        self._interval_s = interval_s
        self._step = step
        self._logger = logger
        self._failure = failure
        self._immediately = immediately
        self._task: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()

    def start(self) -> None:
        self._closing.clear()
        self._task = asyncio.create_task(self._run(), name=self._name)

    @property
    def running(self) -> bool:
        return self._task is not None

    @property
    def closing(self) -> bool:
        """Whether close() is waiting for the round in progress: a long round may end early
        at a safe point."""
        return self._closing.is_set()

    async def _run(self) -> None:
        wait = not self._immediately
        while True:
            if wait:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), self._interval_s)
                    return  # closed between rounds
            wait = True
            if self._closing.is_set():
                return  # closed before its first round
            try:
                await self._step()
            except NovaError as exc:
                self._logger.warning("%s: %s", self._failure, exc.message)

    async def close(self, grace_s: float = CLOSE_GRACE_S) -> None:
        """Stop after the round in progress, if any; one still running after ``grace_s`` is
        cancelled."""
        task, self._task = self._task, None
        if task is None:
            return
        self._closing.set()
        done, _ = await asyncio.wait({task}, timeout=grace_s)
        if not done:
            self._logger.warning(
                "%s: a round still running after %gs is cancelled", self._name, grace_s
            )
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        self._closing.clear()
