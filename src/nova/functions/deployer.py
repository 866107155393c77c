"""Makes stored functions runnable: materialised code + a pool, loaded once per function.

The executor depends only on :meth:`Deployer.loaded_pool` and :meth:`Deployer.pool_for`; after
a daemon restart the first invocation of each function loads it from the store (single-flight:
concurrent first requests share one load).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from nova.code.cache import CodeCache
from nova.core.models import LATEST_VERSION, CodeBundle, FunctionRecord
from nova.pool.deployment import Deployment
from nova.pool.function_pool import FunctionPool
from nova.pool.manager import PoolManager
from nova.runtimes.registry import RuntimeRegistry
from nova.sandbox.registry import BackendRegistry
from nova.store.ports import Store


@dataclass(slots=True)
class StagedCode:
    """Code written to a staging directory, waiting for the record it belongs to."""

    code_hash: str
    path: Path
    adopted: bool = False


class Deployer:
    def __init__(
        self,
        store: Store,
        pools: PoolManager,
        cache: CodeCache,
        runtimes: RuntimeRegistry,
        backends: BackendRegistry,
        timeout_grace_s: float,
    ) -> None:
        self._store = store
        self._timeout_grace_s = timeout_grace_s
        self._pools = pools
        self._cache = cache
        self._runtimes = runtimes
        self._backends = backends
        self._loading: dict[str, asyncio.Future[FunctionPool]] = {}

    def loaded_pool(self, name: str) -> FunctionPool | None:
        """The function's pool if it is loaded already (the warm path: no coroutine)."""
        return self._pools.get(name)

    async def pool_for(self, name: str) -> FunctionPool:
        pool = self.loaded_pool(name)
        if pool is not None:
            return pool
        loading = self._loading.get(name)
        if loading is None:
            loading = asyncio.ensure_future(self._load(name))
            self._loading[name] = loading
            loading.add_done_callback(lambda _: self._loading.pop(name, None))
        return await asyncio.shield(loading)

    async def _load(self, name: str) -> FunctionPool:
        return await self.deploy(await self._store.functions.get(name))

    @contextlib.asynccontextmanager
    async def code_staged(self, code: CodeBundle) -> AsyncIterator[StagedCode]:
        """Write ``code`` to disk before the block stores it, so a stored function never points
        at code that cannot be written; the block passes the stored record to :meth:`adopt`.
        Staged code the block did not adopt (it failed) is removed."""
        staged = StagedCode(code.sha256, await asyncio.to_thread(self._cache.stage, code))
        try:
            yield staged
        finally:
            if not staged.adopted:
                await asyncio.to_thread(self._cache.discard, staged.path)

    async def adopt(self, staged: StagedCode, record: FunctionRecord) -> None:
        """Move staged code into place as ``record``'s code."""
        await asyncio.to_thread(self._cache.adopt, staged.path, record.id, staged.code_hash)
        staged.adopted = True

    async def deploy(self, record: FunctionRecord, code: CodeBundle | None = None) -> FunctionPool:
        """Make ``record`` runnable. The code is read from the store only when this version is
        not on disk yet (the cache is keyed by the same SHA-256 as ``record.code_hash``)."""
        code_dir = self._cache.path_for(record.id, record.code_hash)
        if not code_dir.is_dir():
            code = code or await self._store.functions.get_code(record.name)
            code_dir = await asyncio.to_thread(self._cache.materialise, record.id, code)
        runtime, interpreter = self._runtimes.require_available(record.config.runtime)
        deployment = Deployment(
            function_id=record.id,
            config=record.config,
            version=LATEST_VERSION,
            code_hash=record.code_hash,
            code_dir=code_dir,
            interpreter=interpreter,
            hot_reload=self._backends.get(record.config.backend).info.supports_reload
            and runtime.interpreted,
        )
        return self._pools.deploy(deployment)

    def undeploy(self, record: FunctionRecord) -> None:
        """Stop serving a deleted function: invocations still running may finish within their
        timeout (and the executor's grace past it); its code leaves the disk once its instances
        are gone."""

        async def forget_code() -> None:
            await asyncio.to_thread(self._cache.forget, record.id)

        grace_s = record.config.timeout_s + self._timeout_grace_s
        self._pools.retire(record.name, grace_s, forget_code)
