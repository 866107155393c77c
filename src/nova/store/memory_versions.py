"""Versions, aliases and the change log of the in-memory store (see nova.store.memory)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from datetime import UTC, datetime
from typing import Any

from nova.core.changes import Change, ChangeKind
from nova.core.errors import (
    AliasConflict,
    AliasNotFound,
    FunctionNotFound,
    VersionInUse,
    VersionNotFound,
)
from nova.core.models import FunctionRecord, Page
from nova.core.versions import (
    AliasChange,
    AliasRecord,
    CanaryPolicy,
    ChangeReason,
    FunctionVersion,
    Routing,
)
from nova.store import cursors
from nova.store.memory_state import MemoryState
from nova.store.ports import DEFAULT_PAGE_LIMIT


def _function(state: MemoryState, name: str) -> FunctionRecord:
    state.check_open()
    try:
        return state.functions[name][0]
    except KeyError:
        raise FunctionNotFound(name) from None


class MemoryVersionRepository:
    def __init__(self, state: MemoryState) -> None:
        self._state = state

    async def publish(self, name: str, description: str) -> tuple[FunctionVersion, bool]:
        record = _function(self._state, name)
        versions = self._state.versions.setdefault(record.id, {})
        if versions:
            newest = versions[max(versions)]
            if newest.code_hash == record.code_hash and newest.config == record.config:
                return newest, False
        number = self._state.last_version.get(record.id, 0) + 1
        self._state.last_version[record.id] = number
        version = FunctionVersion(
            function_id=record.id,
            function_name=name,
            number=number,
            config=record.config,
            code_hash=record.code_hash,
            code_size=record.code_size,
            description=description,
            created_at=datetime.now(UTC),
        )
        versions[number] = version
        self._state.record_change(ChangeKind.VERSION_PUBLISHED, record.id, name, version=number)
        return version, True

    async def get(self, name: str, number: int) -> FunctionVersion:
        record = _function(self._state, name)
        try:
            return self._state.versions.get(record.id, {})[number]
        except KeyError:
            raise VersionNotFound(name, number) from None

    async def list(
        self, name: str, *, limit: int = DEFAULT_PAGE_LIMIT, cursor: str | None = None
    ) -> Page[FunctionVersion]:
        record = _function(self._state, name)
        cursors.check_limit(limit)
        after = int(cursors.decode(cursor, cursors.VERSIONS, 1)[0]) if cursor is not None else 0
        versions = self._state.versions.get(record.id, {})
        numbers = sorted(number for number in versions if number > after)
        items = [versions[number] for number in numbers[:limit]]
        more = len(numbers) > limit
        return Page(
            items, cursors.encode(cursors.VERSIONS, str(items[-1].number)) if more else None
        )

    async def delete(self, name: str, number: int) -> FunctionVersion:
        version = await self.get(name, number)
        aliases = self._state.aliases.get(version.function_id, {})
        routed = sorted(alias for alias, record in aliases.items() if number in record.versions)
        if routed:
            raise VersionInUse(name, number, routed)
        del self._state.versions[version.function_id][number]
        record = self._state.functions[name][0]
        self._state.drop_unused_code(record.id, record.code_hash)
        self._state.record_change(
            ChangeKind.VERSION_DELETED, version.function_id, name, version=number
        )
        return version


class MemoryAliasRepository:
    def __init__(self, state: MemoryState) -> None:
        self._state = state

    async def put(
        self,
        name: str,
        alias: str,
        routing: Routing,
        *,
        description: str = "",
        policy: CanaryPolicy | None = None,
        reason: ChangeReason = ChangeReason.MANUAL,
        detail: dict[str, Any] | None = None,
        expected_revision: int | None = None,
    ) -> AliasRecord:
        record = _function(self._state, name)
        current = self._state.aliases.get(record.id, {}).get(alias)
        if expected_revision is not None and (
            current is None or current.revision != expected_revision
        ):
            raise AliasConflict(
                f"alias {alias!r} of {name!r} changed since revision {expected_revision}; "
                "read it again and retry"
            )
        versions = self._state.versions.get(record.id, {})
        for entry in routing:
            if entry.version not in versions:
                raise VersionNotFound(name, entry.version)
        return self._write(record, alias, current, routing, description, policy, reason, detail)

    async def rollback(self, name: str, alias: str) -> AliasRecord:
        current = await self.get(name, alias)
        history = self._state.history.get((current.function_id, alias), [])
        previous = history[-1].before if history else ()
        if not previous:
            raise AliasConflict(
                f"alias {alias!r} of {name!r} has no earlier routing to roll back to"
            )
        record = _function(self._state, name)
        for entry in previous:
            if entry.version not in self._state.versions.get(record.id, {}):
                raise VersionNotFound(name, entry.version)
        return self._write(
            record,
            alias,
            current,
            previous,
            current.description,
            current.policy,
            ChangeReason.ROLLBACK,
            None,
        )

    async def get(self, name: str, alias: str) -> AliasRecord:
        record = _function(self._state, name)
        try:
            return self._state.aliases.get(record.id, {})[alias]
        except KeyError:
            raise AliasNotFound(name, alias) from None

    async def of(self, name: str) -> list[AliasRecord]:
        record = _function(self._state, name)
        aliases = self._state.aliases.get(record.id, {})
        return [aliases[alias] for alias in sorted(aliases)]

    async def with_policy(self) -> list[AliasRecord]:
        self._state.check_open()
        return [
            alias
            for function_id in sorted(self._state.aliases)
            for _, alias in sorted(self._state.aliases[function_id].items())
            if alias.policy is not None
        ]

    async def delete(self, name: str, alias: str) -> AliasRecord:
        current = await self.get(name, alias)
        del self._state.aliases[current.function_id][alias]
        self._remember(current.function_id, alias, current.routing, (), ChangeReason.MANUAL, None)
        self._state.record_change(ChangeKind.ALIAS_DELETED, current.function_id, name, alias=alias)
        return current

    async def history(self, name: str, alias: str, limit: int = 50) -> list[AliasChange]:
        record = _function(self._state, name)
        return list(reversed(self._state.history.get((record.id, alias), [])))[:limit]

    async def record_analysis(self, function_id: str, alias: str, analysis: dict[str, Any]) -> None:
        self._state.check_open()
        aliases = self._state.aliases.get(function_id, {})
        if alias in aliases:
            aliases[alias] = dataclasses.replace(aliases[alias], analysis=dict(analysis))

    def _write(
        self,
        record: FunctionRecord,
        alias: str,
        current: AliasRecord | None,
        routing: Routing,
        description: str,
        policy: CanaryPolicy | None,
        reason: ChangeReason,
        detail: dict[str, Any] | None,
    ) -> AliasRecord:
        if current is not None and (current.routing, current.description, current.policy) == (
            routing,
            description,
            policy,
        ):
            return current
        now = datetime.now(UTC)
        written = AliasRecord(
            function_id=record.id,
            function_name=record.name,
            name=alias,
            routing=routing,
            description=description,
            policy=policy,
            revision=current.revision + 1 if current is not None else 1,
            created_at=current.created_at if current is not None else now,
            updated_at=now,
            analysis=current.analysis if current is not None else None,
        )
        self._state.aliases.setdefault(record.id, {})[alias] = written
        if current is None or current.routing != routing:
            before = current.routing if current is not None else ()
            self._remember(record.id, alias, before, routing, reason, detail)
        self._state.record_change(ChangeKind.ALIAS_CHANGED, record.id, record.name, alias=alias)
        return written

    def _remember(
        self,
        function_id: str,
        alias: str,
        before: Routing,
        after: Routing,
        reason: ChangeReason,
        detail: dict[str, Any] | None,
    ) -> None:
        self._state.history.setdefault((function_id, alias), []).append(
            AliasChange(alias, datetime.now(UTC), before, after, reason, dict(detail or {}))
        )


class MemoryChangeLog:
    def __init__(self, state: MemoryState) -> None:
        self._state = state

    async def head(self) -> int:
        self._state.check_open()
        return self._state.changes[-1].seq if self._state.changes else 0

    async def since(self, seq: int, limit: int = 500) -> list[Change]:
        self._state.check_open()
        return [change for change in self._state.changes if change.seq > seq][:limit]

    async def wait(self, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._state.changed.wait()
        self._state.changed.clear()

    async def prune(self, before: datetime) -> int:
        kept = [change for change in self._state.changes if change.at >= before]
        pruned = len(self._state.changes) - len(kept)
        self._state.changes[:] = kept
        return pruned
