"""All function pools of a daemon, plus the background loops that keep them healthy."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from nova.pool.deployment import Deployment
from nova.pool.function_pool import FunctionPool, PoolLimits, PoolStats
from nova.pool.launcher import Launcher

logger = logging.getLogger(__name__)


class PoolManager:
    def __init__(
        self,
        launcher: Launcher,
        limits: PoolLimits,
        idle_ttl_s: float,
        cleanup_interval_s: float,
        health_check_interval_s: float,
    ) -> None:
        self._launcher = launcher
        self._limits = limits
        self._idle_ttl_s = idle_ttl_s
        self._cleanup_interval_s = cleanup_interval_s
        self._health_check_interval_s = health_check_interval_s
        self._pools: dict[str, FunctionPool] = {}
        self._retiring: dict[asyncio.Task[None], FunctionPool | None] = {}
        self._loops: list[asyncio.Task[None]] = []

    def get(self, name: str) -> FunctionPool | None:
        return self._pools.get(name)

    def deploy(self, deployment: Deployment) -> FunctionPool:
        """Create the function's pool or move it to a new deployment."""
        pool = self._pools.get(deployment.name)
        if pool is None:
            pool = FunctionPool(deployment, self._launcher, self._limits)
            self._pools[deployment.name] = pool
            pool.ensure_min_replicas()
        else:
            pool.update(deployment)
        return pool

    def retire(self, name: str, grace_s: float, then: Callable[[], Awaitable[None]]) -> None:
        """Take the function's pool out of service now and wind it down in the background
        (running invocations get up to ``grace_s`` to finish); ``then`` runs once it is gone."""
        pool = self._pools.pop(name, None)
        task = asyncio.create_task(self._retire(pool, grace_s, then), name=f"retire-{name}")
        self._retiring[task] = pool
        task.add_done_callback(lambda done: self._retiring.pop(done, None))

    async def _retire(
        self, pool: FunctionPool | None, grace_s: float, then: Callable[[], Awaitable[None]]
    ) -> None:
        try:
            if pool is not None:
                await pool.retire(grace_s)
        finally:
            await then()

    def start_background(self) -> None:
        self._loops = [
            asyncio.create_task(
                self._every(self._cleanup_interval_s, self._reap), name="pool-reaper"
            ),
            asyncio.create_task(
                self._every(self._health_check_interval_s, self._check_health), name="pool-health"
            ),
        ]

    async def _every(self, interval_s: float, action: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await action()
            except Exception:  # a maintenance failure must not end the loop
                logger.exception("pool maintenance failed")

    async def _reap(self) -> None:
        for pool in list(self._pools.values()):
            reaped = await pool.reap_idle(self._idle_ttl_s)
            if reaped:
                logger.info("stopped %d idle instance(s) of %s", reaped, pool.deployment.name)

    async def _check_health(self) -> None:
        for pool in list(self._pools.values()):
            await pool.check_health()

    def stats(self) -> list[PoolStats]:
        return [pool.stats() for pool in self._pools.values()]

    async def close(self) -> None:
        for task in self._loops:
            task.cancel()
        for task in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        retiring = [pool for pool in self._retiring.values() if pool is not None]
        await asyncio.gather(
            *(pool.close() for pool in [*self._pools.values(), *retiring]),
            return_exceptions=True,
        )
        await asyncio.gather(*self._retiring, return_exceptions=True)
        self._pools.clear()
