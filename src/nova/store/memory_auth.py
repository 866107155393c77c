"""In-memory fakes of the ``ApiKeyRepository`` and ``AuditRepository`` ports."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime

from nova.core.audit import AuditEntry, AuditFilter
from nova.core.auth import ApiKey, KeyAlreadyExists, KeyNotFound
from nova.core.changes import ChangeKind
from nova.core.models import Page
from nova.store import cursors
from nova.store.memory_state import MemoryState
from nova.store.ports import DEFAULT_PAGE_LIMIT


class MemoryApiKeyRepository:
    def __init__(self, state: MemoryState) -> None:
        self._state = state

    async def create(self, key: ApiKey) -> ApiKey:
        self._state.check_open()
        keys = self._state.api_keys
        if key.name in keys or any(k.key_hash == key.key_hash for k in keys.values()):
            raise KeyAlreadyExists(key.name)
        keys[key.name] = key
        self._changed(key)
        return key

    async def get(self, name: str) -> ApiKey:
        self._state.check_open()
        try:
            return self._state.api_keys[name]
        except KeyError:
            raise KeyNotFound(name) from None

    async def all(self) -> list[ApiKey]:
        self._state.check_open()
        return [self._state.api_keys[name] for name in sorted(self._state.api_keys)]

    async def set_enabled(self, name: str, enabled: bool) -> ApiKey:
        key = dataclasses.replace(await self.get(name), enabled=enabled)
        self._state.api_keys[name] = key
        self._changed(key)
        return key

    async def delete(self, name: str) -> ApiKey:
        key = await self.get(name)
        del self._state.api_keys[name]
        self._changed(key)
        return key

    async def touch(self, last_used: Mapping[str, datetime]) -> None:
        self._state.check_open()
        keys = self._state.api_keys
        for name, key in list(keys.items()):
            if key.id in last_used:
                keys[name] = dataclasses.replace(key, last_used_at=last_used[key.id])

    def _changed(self, key: ApiKey) -> None:
        self._state.record_change(ChangeKind.KEY_CHANGED, "", "", api_key=key.id)


class MemoryAuditRepository:
    def __init__(self, state: MemoryState) -> None:
        self._state = state

    async def add_many(self, entries: Sequence[AuditEntry]) -> None:
        self._state.check_open()
        log = self._state.audit
        for entry in entries:
            log.append(dataclasses.replace(entry, seq=len(log) + 1))

    async def list(
        self, selection: AuditFilter, *, limit: int = DEFAULT_PAGE_LIMIT, cursor: str | None = None
    ) -> Page[AuditEntry]:
        self._state.check_open()
        cursors.check_limit(limit)
        before = int(cursors.decode(cursor, cursors.AUDIT, 1)[0]) if cursor else None
        matching = [
            entry
            for entry in reversed(self._state.audit)
            if (before is None or entry.seq < before) and _matches(entry, selection)
        ]
        items = matching[:limit]
        more = len(matching) > limit
        return Page(items, cursors.encode(cursors.AUDIT, str(items[-1].seq)) if more else None)


def _matches(entry: AuditEntry, selection: AuditFilter) -> bool:
    action = selection.action
    outcome = selection.outcome
    return (
        (selection.actor is None or entry.actor_name == selection.actor)
        and (
            action is None
            or (entry.action.startswith(action) if action.endswith(".") else entry.action == action)
        )
        and (selection.target is None or entry.target == selection.target)
        and (
            outcome is None
            or (entry.outcome != "ok" if outcome == "denied" else entry.outcome == outcome)
        )
        and (selection.since is None or entry.at >= selection.since)
        and (selection.until is None or entry.at < selection.until)
        and (selection.environment is None or entry.environment == selection.environment)
    )
