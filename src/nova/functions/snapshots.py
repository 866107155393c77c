"""Function snapshots as the API sees them: one list over every backend that keeps them, a
build on request (or on every create/update in ``eager`` mode), delete by id, and scale to zero.

A change of a function drops its ``$LATEST`` snapshot at once (its code or config may differ
now: the manager logs the reason and counts it); deleting the function drops them all.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from nova.core.errors import NovaError, SnapshotNotFound
from nova.core.models import LATEST_VERSION
from nova.functions.resolver import FunctionResolver
from nova.pool.deployment import Deployment
from nova.pool.manager import PoolManager
from nova.sandbox.base import SnapshotInfo
from nova.sandbox.registry import BackendRegistry

logger = logging.getLogger(__name__)


class SnapshotBuilder(Protocol):
    async def snapshot(self, deployment: Deployment) -> SnapshotInfo: ...


class SnapshotService:
    def __init__(
        self,
        resolver: FunctionResolver,
        builder: SnapshotBuilder,
        backends: BackendRegistry,
        pools: PoolManager,
        *,
        eager: bool,
    ) -> None:
        self._resolver = resolver
        self._builder = builder
        self._backends = backends
        self._pools = pools
        self._eager = eager
        self._tasks: set[asyncio.Task[None]] = set()
        resolver.listen(self._function_changed)

    def list(self) -> list[SnapshotInfo]:
        return [info for store in self._backends.snapshot_stores() for info in store.list()]

    async def create(self, name: str, qualifier: str | None = None) -> SnapshotInfo:
        """Build the snapshot of the function's version (``$LATEST`` by default) now."""
        pool = await self._resolver.resolve(name, qualifier)
        return await self._builder.snapshot(pool.deployment)

    async def delete(self, snapshot_id: str) -> None:
        for store in self._backends.snapshot_stores():
            if await store.delete(snapshot_id):
                return
        raise SnapshotNotFound(snapshot_id)

    async def scale_to_zero(self, name: str) -> int:
        """Stop the function's warm instances and keep its snapshots; how many stopped."""
        pool = await self._resolver.resolve(name)  # FunctionNotFound for an unknown name
        pools = self._pools.of_function(pool.deployment.function_id)
        return sum(each.retire_instances() for each in pools)

    def _function_changed(self, name: str, deleted: bool) -> None:
        task = asyncio.get_running_loop().create_task(self._refresh(name, deleted))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _refresh(self, name: str, deleted: bool) -> None:
        version, reason = (
            (None, "the function was deleted")
            if deleted
            else (LATEST_VERSION, "the function was updated")
        )
        for store in self._backends.snapshot_stores():
            await store.retire(name, version, reason)
        if self._eager and not deleted:
            try:
                await self.create(name)
            except NovaError as exc:  # the first cold start builds it, or starts normally
                logger.info("no eager snapshot of %s: %s", name, exc.message)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
