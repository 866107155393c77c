"""``name[:qualifier]`` -> the pool of exactly one (function, version): the executor's one port.

A function's entry caches its record, the pools deployed for its $LATEST and versions, and
the routing of the aliases used so far; the warm path is two dict lookups. The cache is kept
true by :meth:`FunctionResolver.refresh`, which the function service calls after its own
writes and the change-log follower calls for everyone else's. Loading is single-flight: many
first requests for one function, version or alias share one store read and one deployment.

A compiled language's change is built in the background: its $LATEST keeps serving the
previous build meanwhile and moves to the new one once it succeeds (as Lambda serves the previous
code while an update is in progress), so a failed build leaves the previous build serving. A
function with nothing deployed yet waits for its build on its first invocation instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from nova.core.errors import (
    CompileFailed,
    FunctionNotFound,
    NovaError,
    StoreUnavailable,
    VersionNotFound,
)
from nova.core.models import LATEST_VERSION, CodeBundle, FunctionRecord
from nova.core.names import version_number
from nova.functions.deployer import Deployer
from nova.functions.routing import WeightedChoice
from nova.pool.function_pool import FunctionPool
from nova.store.ports import Store

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(slots=True)
class _Entry:
    record: FunctionRecord
    latest: FunctionPool | None = None
    versions: dict[int, FunctionPool] = field(default_factory=dict)
    routes: dict[str, WeightedChoice] = field(default_factory=dict)


class FunctionResolver:
    def __init__(self, store: Store, deployer: Deployer) -> None:
        self._store = store
        self._deployer = deployer
        self._entries: dict[str, _Entry] = {}
        self._loading_entries: _SingleFlight[_Entry] = _SingleFlight()
        self._loading_pools: _SingleFlight[FunctionPool] = _SingleFlight()
        self._loading_routes: _SingleFlight[WeightedChoice] = _SingleFlight()
        self._building: set[asyncio.Task[None]] = set()
        self._listeners: list[Callable[[str, bool], None]] = []

    def listen(self, listener: Callable[[str, bool], None]) -> None:
        """Call ``listener(name, deleted)`` whenever a function changes or goes, here or
        through another daemon (the snapshot service drops what no longer matches)."""
        self._listeners.append(listener)

    def _changed(self, name: str, *, deleted: bool = False) -> None:
        for listener in self._listeners:
            listener(name, deleted)

    async def resolve(
        self, name: str, qualifier: str | None = None, routing_key: str | None = None
    ) -> FunctionPool:
        """The pool to run this invocation on. ``FunctionNotFound``, ``VersionNotFound`` or
        ``AliasNotFound`` when the reference names nothing."""
        entry = self._entries.get(name)
        if entry is None:
            entry = await self._loading_entries.run((name, ""), lambda: self._load(name))
        if qualifier is None or qualifier == LATEST_VERSION:
            if entry.latest is not None:
                return entry.latest
            return await self._loading_pools.run(
                (name, LATEST_VERSION), lambda: self._deploy_latest(entry)
            )
        number = version_number(qualifier)
        if number is None:
            route = entry.routes.get(qualifier)
            if route is None:
                route = await self._loading_routes.run(
                    (name, qualifier), lambda: self._load_route(entry, qualifier)
                )
            number = route.pick(routing_key)
        pool = entry.versions.get(number)
        if pool is not None:
            return pool
        chosen = number
        return await self._loading_pools.run(
            (name, str(chosen)), lambda: self._deploy_version(entry, chosen)
        )

    # -- loading -----------------------------------------------------------------------------

    async def _load(self, name: str) -> _Entry:
        entry = self._entries.get(name)
        if entry is None:
            entry = self._entries[name] = _Entry(await self._store.functions.get(name))
        return entry

    async def _deploy_latest(self, entry: _Entry, code: CodeBundle | None = None) -> FunctionPool:
        record = entry.record
        pool = await self._deployer.deploy(
            record.id, LATEST_VERSION, record.config, record.code_hash, record.revision, code
        )
        if self._entries.get(record.name) is entry:
            entry.latest = pool
        return pool

    async def _deploy_version(self, entry: _Entry, number: int) -> FunctionPool:
        version = await self._store.versions.get(entry.record.name, number)
        if version.function_id != entry.record.id:  # deleted and created again meanwhile
            raise VersionNotFound(entry.record.name, number)
        pool = await self._deployer.deploy(
            version.function_id, str(number), version.config, version.code_hash, 0
        )
        if self._entries.get(entry.record.name) is entry:
            entry.versions[number] = pool
        return pool

    async def _load_route(self, entry: _Entry, alias: str) -> WeightedChoice:
        record = await self._store.aliases.get(entry.record.name, alias)
        route = WeightedChoice(record.routing)
        if self._entries.get(entry.record.name) is entry:
            entry.routes[alias] = route
        return route

    # -- keeping the cache true --------------------------------------------------------------

    async def function_changed(self, record: FunctionRecord, code: CodeBundle | None) -> None:
        """A local create or update: serve ``record`` now (``code`` saves a store read)."""
        entry = self._entries.get(record.name)
        if entry is not None and entry.record.id != record.id:
            self._drop(entry)
            entry = None
        if entry is None:
            entry = self._entries[record.name] = _Entry(record)
        elif entry.record.revision > record.revision:
            return  # a newer revision is served already
        entry.record = record
        self._changed(record.name)
        await self._redeploy_latest(entry, code, start_warm=True)

    def function_deleted(self, record: FunctionRecord) -> None:
        self._changed(record.name, deleted=True)
        entry = self._entries.get(record.name)
        if entry is not None and entry.record.id == record.id:
            self._drop(entry)
        else:  # never served here, or already dropped: its pools (if any) still go
            self._deployer.retire_function(record.id)

    async def refresh(self, name: str) -> None:
        """Bring ``name``'s entry up to date with the store (after any change to it)."""
        entry = self._entries.get(name)
        if entry is None:
            return  # nothing served here: the first invocation loads it
        # At once, before any await: an invocation arriving while the store is read must not
        # use an alias route the change may have replaced (they are read again when used).
        entry.routes.clear()
        try:
            record = await self._store.functions.get(name)
        except FunctionNotFound:
            record = None
        if record is None or record.id != entry.record.id:
            self._changed(name, deleted=True)
            self._drop(entry)
            return
        try:
            if record.revision > entry.record.revision:
                entry.record = record
                self._changed(name)
                await self._redeploy_latest(entry, start_warm=False)
            for number in list(entry.versions):
                try:
                    await self._store.versions.get(name, number)
                except VersionNotFound:
                    self._deployer.retire_version(record.id, str(number))
                    entry.versions.pop(number, None)
        except StoreUnavailable:
            raise
        except NovaError as exc:  # e.g. its backend went away: invocations will say so
            logger.warning("cannot redeploy %s: %s", name, exc.message)

    async def _redeploy_latest(
        self, entry: _Entry, code: CodeBundle | None = None, *, start_warm: bool
    ) -> None:
        """Move a served $LATEST to the entry's record (``start_warm``: deploy one kept warm
        too); a compiled language's build starts now and the move waits for it in the
        background."""
        record = entry.record
        self._deployer.start_compile(record.id, record.config, record.code_hash)
        if entry.latest is None and not (start_warm and record.config.min_replicas > 0):
            return  # nothing served: the first invocation deploys (and waits for the build)
        if not self._deployer.compiles(record.config):
            await self._deploy_latest(entry, code)
            return
        task = asyncio.get_running_loop().create_task(self._deploy_when_built(entry, record))
        self._building.add(task)
        task.add_done_callback(self._building.discard)

    async def _deploy_when_built(self, entry: _Entry, record: FunctionRecord) -> None:
        try:
            await self._deployer.compiled(record.id, record.config, record.code_hash, None)
            if entry.record is not record or self._entries.get(record.name) is not entry:
                return  # changed again meanwhile: that change deploys its own build
            await self._loading_pools.run(
                (record.name, LATEST_VERSION), lambda: self._deploy_latest(entry)
            )
        except CompileFailed:
            logger.warning(
                "the build of %s revision %d failed; its previous build keeps serving",
                record.name,
                record.revision,
            )
        except NovaError as exc:
            logger.warning("cannot deploy the build of %s: %s", record.name, exc.message)

    async def refresh_all(self) -> None:
        for name in list(self._entries):
            await self.refresh(name)

    def _drop(self, entry: _Entry) -> None:
        if self._entries.get(entry.record.name) is entry:
            del self._entries[entry.record.name]
        self._deployer.retire_function(entry.record.id)

    def served(self) -> list[FunctionRecord]:
        return [entry.record for entry in self._entries.values()]


class _SingleFlight(Generic[T]):
    """Callers asking for a key while its load runs share that load's result."""

    def __init__(self) -> None:
        self._running: dict[tuple[str, str], asyncio.Future[T]] = {}

    async def run(self, key: tuple[str, str], load: Callable[[], Awaitable[T]]) -> T:
        running = self._running.get(key)
        if running is None:
            running = asyncio.ensure_future(load())
            self._running[key] = running
            running.add_done_callback(lambda _: self._running.pop(key, None))
        return await asyncio.shield(running)
