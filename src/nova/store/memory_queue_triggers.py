"""The in-memory fake of the ``TriggerRepository`` port (see nova.store.memory)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from nova.core.changes import ChangeKind
from nova.core.models import Page
from nova.core.queue_triggers import QueueTrigger, TriggerAlreadyExists, TriggerNotFound
from nova.store import cursors
from nova.store.memory_state import MemoryState
from nova.store.ports import DEFAULT_PAGE_LIMIT


class MemoryTriggerRepository:
    def __init__(self, state: MemoryState) -> None:
        self._state = state
        self._triggers: dict[str, QueueTrigger] = {}

    async def create(self, trigger: QueueTrigger) -> QueueTrigger:
        self._state.check_open()
        if trigger.name in self._triggers:
            raise TriggerAlreadyExists(trigger.name)
        now = datetime.now(UTC)
        stored = dataclasses.replace(trigger, created_at=now, updated_at=now)
        self._triggers[trigger.name] = stored
        self._changed(stored)
        return stored

    async def get(self, name: str) -> QueueTrigger:
        self._state.check_open()
        try:
            return self._triggers[name]
        except KeyError:
            raise TriggerNotFound(name) from None

    async def list(
        self, *, limit: int = DEFAULT_PAGE_LIMIT, cursor: str | None = None
    ) -> Page[QueueTrigger]:
        self._state.check_open()
        cursors.check_limit(limit)
        after = cursors.decode(cursor, cursors.TRIGGERS, 1)[0] if cursor is not None else None
        names = sorted(name for name in self._triggers if after is None or name > after)
        items = [self._triggers[name] for name in names[:limit]]
        more = len(names) > limit
        return Page(items, cursors.encode(cursors.TRIGGERS, items[-1].name) if more else None)

    async def set_enabled(self, name: str, enabled: bool) -> QueueTrigger:
        trigger = dataclasses.replace(
            await self.get(name), enabled=enabled, updated_at=datetime.now(UTC)
        )
        self._triggers[name] = trigger
        self._changed(trigger)
        return trigger

    async def delete(self, name: str) -> QueueTrigger:
        trigger = await self.get(name)
        del self._triggers[name]
        self._changed(trigger)
        return trigger

    def _changed(self, trigger: QueueTrigger) -> None:
        self._state.record_change(ChangeKind.TRIGGER_CHANGED, "", "", alias=trigger.name)
