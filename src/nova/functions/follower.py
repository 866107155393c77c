"""Following the store's change log, so a change made through any daemon reaches this one.

Each daemon starts at the log's head (it has nothing cached yet) and from then on refreshes
every function a new entry names, renews the instances using a secret an entry names, and
reconciles its queue-trigger consumers when an entry says a trigger changed, and reloads the
API keys when an entry names one, at
most ``poll_s`` after the commit (PostgreSQL wakes it at once with NOTIFY). Refreshing
re-reads the function, so entries are not applied one by one and a refresh that comes twice
changes nothing. When the store was unreachable for longer than the log is kept, entries may
have been pruned meanwhile: every cached function is refreshed. The follower also prunes
entries older than ``retention_s``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from nova.core.changes import ChangeKind
from nova.core.errors import NovaError
from nova.store.ports import ChangeLog

logger = logging.getLogger(__name__)

PRUNE_EVERY_S = 3600.0


class ChangeFollower:
    def __init__(
        self,
        changes: ChangeLog,
        refresh: Callable[[str], Awaitable[None]],
        refresh_all: Callable[[], Awaitable[None]],
        *,
        poll_s: float,
        retention_s: float,
        secret_changed: Callable[[str, float], object] | None = None,
        triggers_changed: Callable[[], Awaitable[None]] | None = None,
        keys_changed: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """``secret_changed(name, before)`` runs for a secret set or deleted: instances launched
        before ``before`` (a ``time.time()``) are replaced. ``triggers_changed()`` runs once
        per batch that added, changed or deleted queue triggers (and after a reload of all)."""
        self._triggers_changed = triggers_changed
        self._changes = changes
        self._secret_changed = secret_changed
        self._keys_changed = keys_changed
        self._refresh = refresh
        self._refresh_all = refresh_all
        self._poll_s = poll_s
        self._retention_s = retention_s
        self._seq = 0
        self._task: asyncio.Task[None] | None = None
        self.applied = 0  # entries seen since start

    @property
    def position(self) -> int:
        """The sequence number of the last entry applied."""
        return self._seq

    async def start(self) -> None:
        self._seq = await self._changes.head()
        self._task = asyncio.create_task(self._run(), name="change-follower")

    async def _run(self) -> None:
        last_ok = last_prune = time.monotonic()
        while True:
            await self._changes.wait(self._poll_s)
            try:
                await self.catch_up()
                if time.monotonic() - last_prune > PRUNE_EVERY_S:
                    last_prune = time.monotonic()
                    cutoff = datetime.now(UTC) - timedelta(seconds=self._retention_s)
                    await self._changes.prune(cutoff)
            except NovaError as exc:
                logger.warning("cannot follow the change log (will retry): %s", exc.message)
                await asyncio.sleep(self._poll_s)
                continue
            now = time.monotonic()
            if now - last_ok > self._retention_s / 2:
                logger.warning("the change log was out of reach for a long time: reloading all")
                await self._refresh_all()
                if self._triggers_changed is not None:
                    await self._triggers_changed()
                if self._keys_changed is not None:
                    await self._keys_changed()
            last_ok = now

    async def catch_up(self) -> None:
        """Apply every entry committed since the last one applied."""
        while True:
            batch = await self._changes.since(self._seq)
            if not batch:
                return
            functions = [
                change.function_name
                for change in batch
                if change.function_name and change.secret is None and change.api_key is None
            ]
            for name in dict.fromkeys(functions):
                await self._refresh(name)
            triggers = any(change.kind is ChangeKind.TRIGGER_CHANGED for change in batch)
            if triggers and self._triggers_changed is not None:
                await self._triggers_changed()
            if self._secret_changed is not None:
                # This daemon's clock, now: an instance launched before the entry was read may
                # hold the old value, and the writer's clock (change.at) may run ahead of ours.
                now = time.time()
                for change in batch:
                    if change.secret is not None:
                        self._secret_changed(change.secret, now)
            if self._keys_changed is not None and any(c.api_key for c in batch):
                await self._keys_changed()  # keys are few: all of them are read again
            self._seq = batch[-1].seq
            self.applied += len(batch)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
