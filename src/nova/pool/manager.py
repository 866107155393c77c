"""All function pools of a daemon, plus the background loops that keep them healthy."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping

from nova.core.counters import DaemonCounters
from nova.core.secrets import secret_refs
from nova.core.tenancy import environment_of
from nova.pool.deployment import Deployment
from nova.pool.function_pool import FunctionPool, PoolLimits, PoolStats
from nova.pool.launcher import Launcher

logger = logging.getLogger(__name__)

PoolKey = tuple[str, str]  # (function id, version: "$LATEST" or a number)


class PoolManager:
    """One pool per (function id, version): ``$LATEST`` and every published version that is
    invoked run on instances of their own, so a canary's instances never serve the stable
    version and an update of ``$LATEST`` never touches a published version's."""

    def __init__(
        self,
        launcher: Launcher,
        limits: PoolLimits,
        idle_ttl_s: float,
        cleanup_interval_s: float,
        health_check_interval_s: float,
        counters: DaemonCounters,
        finish_grace_s: float = 0.5,
    ) -> None:
        self._launcher = launcher
        self._counters = counters
        self._limits = limits
        self._idle_ttl_s = idle_ttl_s
        self._cleanup_interval_s = cleanup_interval_s
        self._health_check_interval_s = health_check_interval_s
        self._finish_grace_s = finish_grace_s  # past an invocation's timeout, when retiring
        self._pools: dict[PoolKey, FunctionPool] = {}
        self._retiring: dict[asyncio.Task[None], list[FunctionPool]] = {}
        self._loops: list[asyncio.Task[None]] = []

    def get(self, function_id: str, version: str) -> FunctionPool | None:
        return self._pools.get((function_id, version))

    def all(self) -> list[FunctionPool]:
        return list(self._pools.values())

    def of_function(self, function_id: str) -> list[FunctionPool]:
        return [pool for key, pool in self._pools.items() if key[0] == function_id]

    def deploy(self, deployment: Deployment) -> FunctionPool:
        """Create the pool of the deployment's (function, version) or move it to this
        deployment; one older than the pool's current revision is ignored (it lost a race)."""
        key = (deployment.function_id, deployment.version)
        pool = self._pools.get(key)
        if pool is None:
            pool = FunctionPool(deployment, self._launcher, self._limits, self._counters)
            self._pools[key] = pool
            pool.ensure_min_replicas()
        elif deployment.revision >= pool.deployment.revision and deployment != pool.deployment:
            pool.update(deployment)
        return pool

    def retire(
        self,
        function_id: str,
        version: str | None,
        then: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Take the pools of one version (``None``: every version) out of service now and wind
        them down in the background: invocations still running get their timeout (and a
        grace) to finish. ``then`` runs once they are gone."""
        keys = [
            key
            for key in self._pools
            if key[0] == function_id and (version is None or key[1] == version)
        ]
        pools = [self._pools.pop(key) for key in keys]
        task = asyncio.create_task(self._retire(pools, then), name=f"retire-{function_id}")
        self._retiring[task] = pools
        task.add_done_callback(lambda done: self._retiring.pop(done, None))

    async def _retire(
        self, pools: list[FunctionPool], then: Callable[[], Awaitable[None]] | None
    ) -> None:
        try:
            await asyncio.gather(
                *(
                    pool.retire(pool.deployment.config.timeout_s + self._finish_grace_s)
                    for pool in pools
                ),
                return_exceptions=True,
            )
        finally:
            if then is not None:
                await then()

    def renew_secret_users(self, secret: str, before: float) -> int:
        """Replace the instances launched before ``before`` of every pool whose env refers to
        ``secret``, so their next start reads its value again; returns how many pools."""
        pools = [
            pool
            for pool in self._pools.values()
            if secret in _stored_refs(pool.deployment.config.name, pool.deployment.config.env)
        ]
        for pool in pools:
            pool.renew(before)
        return len(pools)

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
        retiring = [pool for pools in self._retiring.values() for pool in pools]
        await asyncio.gather(
            *(pool.close() for pool in [*self._pools.values(), *retiring]),
            return_exceptions=True,
        )
        await asyncio.gather(*self._retiring, return_exceptions=True)
        self._pools.clear()


def _stored_refs(function: str, env: Mapping[str, str]) -> set[str]:
    """The stored names of the secrets ``env`` refers to (they are ``function``'s
    environment's)."""
    environment = environment_of(function)
    return {environment.secret_name(name) for name in secret_refs(env).values()}
