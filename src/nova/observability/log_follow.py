"""Following invocation records as they are stored: what `nova logs --follow` streams.

Records reach the store in batches, and from several daemons, so one can be stored after a
newer one was already seen: each poll reads the newest window and sends every record of it not
sent before (oldest first), rather than only those newer than the last. A window holds
``WINDOW`` records: more new ones than that between two polls are skipped.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from nova.core.models import InvocationLog

WINDOW = 200
_REMEMBERED = 4 * WINDOW  # ids already sent, kept so a late record is recognised as new


class LogPage(Protocol):
    @property
    def items(self) -> Sequence[InvocationLog]: ...


class LogSource(Protocol):
    async def list(
        self,
        *,
        function_name: str | None = None,
        function_id: str | None = None,
        limit: int = ...,
        cursor: str | None = None,
    ) -> LogPage: ...


@dataclass(frozen=True, slots=True)
class LogFilter:
    outcome: str | None = None  # success, error (any failure) or timeout
    version: str | None = None
    since: datetime | None = None  # also send the window's records created from then on

    def matches(self, log: InvocationLog) -> bool:
        if self.version is not None and log.version != self.version:
            return False
        if self.outcome == "success" and not log.success:
            return False
        if self.outcome == "error" and log.success:
            return False
        return not (self.outcome == "timeout" and log.error_type != "Function.Timeout")


class LogFollower:
    """``start()`` reads the newest window (what exists already); ``records()`` then yields the
    records stored after it, oldest first, until ``stopping()`` - and, with ``since``, first
    those of that window created since then."""

    def __init__(
        self,
        logs: LogSource,
        function_name: str | None,
        selection: LogFilter,
        poll_s: float,
        stopping: Callable[[], bool],
    ) -> None:
        self._logs = logs
        self._function = function_name
        self._selection = selection
        self._poll_s = poll_s
        self._stopping = stopping
        self._first: Sequence[InvocationLog] = ()

    async def start(self) -> None:
        self._first = (await self._logs.list(function_name=self._function, limit=WINDOW)).items

    async def records(self) -> AsyncIterator[InvocationLog]:
        selection, since = self._selection, self._selection.since
        sent: deque[str] = deque(maxlen=_REMEMBERED)
        for log in reversed(self._first):
            if since is not None and log.created_at >= since and selection.matches(log):
                yield log
            sent.append(log.id)
        known = set(sent)
        while not self._stopping():
            await asyncio.sleep(self._poll_s)
            window = await self._logs.list(function_name=self._function, limit=WINDOW)
            for log in reversed(window.items):
                if log.id in known:
                    continue
                if len(sent) == sent.maxlen:
                    known.discard(sent[0])
                sent.append(log.id)
                known.add(log.id)
                if selection.matches(log):
                    yield log
