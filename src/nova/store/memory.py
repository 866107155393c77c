"""An in-process fake of the store ports, for unit tests of the layers above.

It keeps the SQL store's observable behaviour - errors, ordering, revisions, cursors - and the
store's contract tests run against it next to SQLite and PostgreSQL, so it cannot drift. It is
not persistent and not for production: use ``open_store("sqlite:///…")`` there.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from nova.core.builds import StoredBuild
from nova.core.changes import ChangeKind
from nova.core.errors import (
    FunctionAlreadyExists,
    FunctionNotFound,
    RequestInvalid,
)
from nova.core.models import CodeBundle, FunctionConfig, FunctionRecord, InvocationLog, Page
from nova.core.tenancy import Environment
from nova.store import cursors
from nova.store.memory_auth import MemoryApiKeyRepository, MemoryAuditRepository
from nova.store.memory_environments import MemoryEnvironmentRepository
from nova.store.memory_events import MemoryEventQueue
from nova.store.memory_queue_triggers import MemoryTriggerRepository
from nova.store.memory_secrets import MemorySecretRepository
from nova.store.memory_state import MemoryState
from nova.store.memory_triggers import MemoryRouteRepository, MemoryScheduleRepository
from nova.store.memory_versions import (
    MemoryAliasRepository,
    MemoryChangeLog,
    MemoryVersionRepository,
)
from nova.store.ports import DEFAULT_PAGE_LIMIT, Store
from nova.store.timings import TransactionTimings


class MemoryFunctionRepository:
    def __init__(self, state: MemoryState) -> None:
        self._state = state

    async def create(self, config: FunctionConfig, code: CodeBundle) -> FunctionRecord:
        self._state.check_open()
        if config.name in self._state.functions:
            raise FunctionAlreadyExists(config.name)
        now = datetime.now(UTC)
        record = FunctionRecord(
            id=str(uuid.uuid4()),
            config=_copy_config(config),
            code_hash=code.sha256,
            code_size=code.size,
            revision=1,
            created_at=now,
            updated_at=now,
        )
        self._state.functions[config.name] = (record, _copy_code(code))
        self._state.codes[(record.id, record.code_hash)] = _copy_code(code)
        self._state.record_change(ChangeKind.FUNCTION_CREATED, record.id, config.name)
        return record

    async def get(self, name: str) -> FunctionRecord:
        return self._entry(name)[0]

    async def list(
        self,
        *,
        limit: int = DEFAULT_PAGE_LIMIT,
        cursor: str | None = None,
        environment: Environment | None = None,
    ) -> Page[FunctionRecord]:
        self._state.check_open()
        cursors.check_limit(limit)
        after = cursors.decode(cursor, cursors.FUNCTIONS, 1)[0] if cursor is not None else None
        names = sorted(
            name
            for name in self._state.functions
            if (after is None or name > after) and (environment is None or environment.holds(name))
        )
        items = [self._state.functions[name][0] for name in names[:limit]]
        more = len(names) > limit
        return Page(items, cursors.encode(cursors.FUNCTIONS, items[-1].name) if more else None)

    async def update(
        self, name: str, config: FunctionConfig, code: CodeBundle | None
    ) -> FunctionRecord:
        if config.name != name:
            raise RequestInvalid(
                f"name: cannot rename function {name!r} to {config.name!r}; create a new "
                "function and delete the old one"
            )
        record, current = self._entry(name)
        bundle = current if code is None else _copy_code(code)
        updated = dataclasses.replace(
            record,
            config=_copy_config(config),
            code_hash=bundle.sha256,
            code_size=bundle.size,
            revision=record.revision + 1,
            updated_at=datetime.now(UTC),
        )
        self._state.functions[name] = (updated, bundle)
        self._state.codes[(record.id, updated.code_hash)] = bundle
        self._state.drop_unused_code(record.id, updated.code_hash)
        self._state.record_change(ChangeKind.FUNCTION_UPDATED, record.id, name)
        return updated

    async def delete(self, name: str) -> FunctionRecord:
        record, _ = self._entry(name)
        state = self._state
        del state.functions[name]
        # What the SQL store's ON DELETE CASCADE removes with the function.
        state.versions.pop(record.id, None)
        state.aliases.pop(record.id, None)
        for key in [key for key in state.history if key[0] == record.id]:
            del state.history[key]
        state.builds.pop(record.id, None)
        state.drop_unused_code(record.id, None)
        state.drop_triggers(name)
        state.record_change(ChangeKind.FUNCTION_DELETED, record.id, name)
        return record

    async def get_code(self, name: str) -> CodeBundle:
        return _copy_code(self._entry(name)[1])

    async def get_code_by_hash(self, function_id: str, code_hash: str) -> CodeBundle:
        self._state.check_open()
        return _copy_code(self._state.codes.get((function_id, code_hash), CodeBundle({})))

    async def usage(self, environment: Environment) -> tuple[int, int]:
        self._state.check_open()
        sizes = [
            record.code_size
            for name, (record, _) in self._state.functions.items()
            if environment.holds(name)
        ]
        return len(sizes), sum(sizes)

    def _entry(self, name: str) -> tuple[FunctionRecord, CodeBundle]:
        self._state.check_open()
        try:
            return self._state.functions[name]
        except KeyError:
            raise FunctionNotFound(name) from None


class MemoryInvocationLogRepository:
    def __init__(self, state: MemoryState) -> None:
        self._state = state

    async def add_many(self, logs: Sequence[InvocationLog]) -> None:
        self._state.check_open()
        for log in logs:
            if log.created_at.utcoffset() is None:
                raise ValueError(f"invocation log {log.id!r} has a naive created_at; use UTC")
        for log in logs:
            # Like the SQL store: the first write of an id wins, a repeated one is skipped.
            self._state.logs.setdefault(
                log.id, dataclasses.replace(log, created_at=log.created_at.astimezone(UTC))
            )

    async def list(
        self,
        *,
        function_name: str | None = None,
        function_id: str | None = None,
        limit: int = DEFAULT_PAGE_LIMIT,
        cursor: str | None = None,
        environment: Environment | None = None,
    ) -> Page[InvocationLog]:
        self._state.check_open()
        cursors.check_limit(limit)
        key = cursors.decode_invocation(cursor) if cursor is not None else None
        matching = sorted(
            (
                log
                for log in self._state.logs.values()
                if (function_name is None or log.function_name == function_name)
                and (function_id is None or log.function_id == function_id)
                and (environment is None or environment.holds(log.function_name))
                and (key is None or (log.created_at, log.id) < key)
            ),
            key=lambda log: (log.created_at, log.id),
            reverse=True,
        )
        items = matching[:limit]
        if len(matching) <= limit:
            return Page(items, None)
        return Page(items, cursors.encode_invocation(items[-1].created_at, items[-1].id))

    async def outcomes(
        self, function_id: str, version: str, since: datetime
    ) -> tuple[Sequence[float], int]:
        self._state.check_open()
        matching = [
            log
            for log in self._state.logs.values()
            if log.function_id == function_id and log.version == version and log.created_at >= since
        ]
        return [log.duration_ms for log in matching], sum(not log.success for log in matching)

    async def delete_older_than(
        self,
        cutoff: datetime,
        limit: int,
        *,
        environment: Environment | None = None,
        excluding: Sequence[Environment] = (),
    ) -> int:
        self._state.check_open()
        old = sorted(
            (
                log
                for log in self._state.logs.values()
                if log.created_at < cutoff
                and (environment is None or environment.holds(log.function_name))
                and not any(other.holds(log.function_name) for other in excluding)
            ),
            key=lambda log: log.created_at,
        )[:limit]
        for log in old:
            del self._state.logs[log.id]
        return len(old)

    async def delete_beyond_count(self, keep: int, limit: int) -> int:
        self._state.check_open()
        by_function: dict[str, list[InvocationLog]] = {}
        for log in self._state.logs.values():
            by_function.setdefault(log.function_name, []).append(log)
        surplus = [
            log
            for logs in by_function.values()
            for log in sorted(logs, key=lambda log: (log.created_at, log.id), reverse=True)[keep:]
        ]
        surplus = sorted(surplus, key=lambda log: log.created_at)[:limit]
        for log in surplus:
            del self._state.logs[log.id]
        return len(surplus)


class MemoryCounterRepository:
    def __init__(self, state: MemoryState) -> None:
        self._state = state

    async def add(self, deltas: Mapping[str, int]) -> None:
        self._state.check_open()
        for name, value in deltas.items():
            if value:
                self._state.counters[name] = self._state.counters.get(name, 0) + value

    async def totals(self) -> dict[str, int]:
        self._state.check_open()
        return dict(self._state.counters)


class MemoryBuildRepository:
    def __init__(self, state: MemoryState) -> None:
        self._state = state

    async def get(self, function_id: str) -> StoredBuild | None:
        self._state.check_open()
        return self._state.builds.get(function_id)

    async def record(
        self, function_id: str, code_hash: str, status: str, output: str, key: str
    ) -> StoredBuild | None:
        self._state.check_open()
        if not any(record.id == function_id for record, _ in self._state.functions.values()):
            return None  # deleted while it was building
        previous = self._state.builds.get(function_id)
        good_hash: str | None = None
        good_key: str | None = None
        if status == "success":
            good_hash, good_key = code_hash, key
        elif previous is not None:
            good_hash, good_key = previous.good_code_hash, previous.good_key
        build = StoredBuild(function_id, code_hash, status, output, key, good_hash, good_key)
        self._state.builds[function_id] = build
        return build


class MemoryStore:
    def __init__(self) -> None:
        self._state = MemoryState()
        self.functions = MemoryFunctionRepository(self._state)
        self.invocations = MemoryInvocationLogRepository(self._state)
        self.versions = MemoryVersionRepository(self._state)
        self.aliases = MemoryAliasRepository(self._state)
        self.changes = MemoryChangeLog(self._state)
        self.counters = MemoryCounterRepository(self._state)
        self.events = MemoryEventQueue()
        self.secrets = MemorySecretRepository(self._state)
        self.triggers = MemoryTriggerRepository(self._state)
        self.routes = MemoryRouteRepository(self._state)
        self.schedules = MemoryScheduleRepository(self._state, self.events)
        self.builds = MemoryBuildRepository(self._state)
        self.api_keys = MemoryApiKeyRepository(self._state)
        self.audit = MemoryAuditRepository(self._state)
        self.environments = MemoryEnvironmentRepository(self._state)
        self.transaction_timings = TransactionTimings()  # no transactions: stays empty

    async def ping(self) -> None:
        self._state.check_open()

    async def close(self) -> None:
        self._state.closed = True


def _copy_config(config: FunctionConfig) -> FunctionConfig:
    # The SQL store hands back a fresh env dict on every read; so must the fake, or a caller
    # mutating a passed-in dict would change what is "stored".
    return dataclasses.replace(config, env=dict(config.env))


def _copy_code(code: CodeBundle) -> CodeBundle:
    return CodeBundle(files=dict(code.files))


if TYPE_CHECKING:
    # Keeps the fake honest against the ports at type-check time, not only in the tests.
    _CONFORMS: Store = MemoryStore()
