"""Invocations running per environment, held under the environment's ``max_concurrency``.

Every invocation passes here, so the common case costs a dict lookup and an int increment:
the function's full name maps straight to its environment's counter, and the limit sits next
to it. The limit is read through the QuotaSource once, when the environment is first seen
(its first invocation awaits that), then refreshed in the background every ``refresh_s``, so
a changed quota takes effect within seconds and the invoke path never waits on a store.

Counts are per daemon: several daemons sharing a store each allow ``max_concurrency``.
"""

from __future__ import annotations

import asyncio
import logging

from nova.core.quotas import ConcurrencyQuotaExceeded, QuotaSource
from nova.core.tenancy import Environment, environment_of

logger = logging.getLogger(__name__)

REFRESH_S = 2.0


class RunningIn:
    """One environment's running invocations and its limit (None: none)."""

    __slots__ = ("environment", "limit", "running")

    def __init__(self, environment: Environment, limit: int | None) -> None:
        self.environment = environment
        self.limit = limit
        self.running = 0

    def release(self) -> None:
        self.running -= 1


class EnvironmentConcurrency:
    def __init__(self, quotas: QuotaSource, refresh_s: float = REFRESH_S) -> None:
        self._quotas = quotas
        self._refresh_s = refresh_s
        self._environments: dict[Environment, RunningIn] = {}
        self._by_function: dict[str, RunningIn] = {}  # full name -> its environment's counter
        self._task: asyncio.Task[None] | None = None

    def enter(self, full_name: str) -> RunningIn | None:
        """Count one more invocation of ``full_name``, to be ``release()``d when it ends;
        ``ConcurrencyQuotaExceeded`` when its environment already runs its limit. None when
        the function was not seen yet: then await ``enter_first``."""
        counter = self._by_function.get(full_name)
        return None if counter is None else _counted(counter)

    async def enter_first(self, full_name: str) -> RunningIn:
        """``enter`` for a function not seen yet: its environment's quota is read first."""
        environment = environment_of(full_name)
        counter = self._environments.get(environment)
        if counter is None:
            limit = await self._limit(environment)
            # Another invocation may have read it meanwhile: its counter is the one to share.
            counter = self._environments.setdefault(environment, RunningIn(environment, limit))
        self._by_function[full_name] = counter
        return _counted(counter)

    def running(self, environment: Environment) -> int:
        counter = self._environments.get(environment)
        return 0 if counter is None else counter.running

    def start(self) -> None:
        self._task = asyncio.create_task(self._refresh_forever(), name="environment-quotas")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def refresh(self) -> None:
        """Read every known environment's limit again."""
        for counter in list(self._environments.values()):
            counter.limit = await self._limit(counter.environment, counter.limit)

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            await self.refresh()

    async def _limit(self, environment: Environment, known: int | None = None) -> int | None:
        """The environment's max_concurrency; ``known`` when the quotas cannot be read now
        (invocations keep running under the last limit seen rather than failing)."""
        try:
            return (await self._quotas(environment)).max_concurrency
        except Exception as exc:  # whatever the registry's store raises: retried next refresh
            logger.warning("cannot read the quotas of environment %s: %s", environment, exc)
            return known


def _counted(counter: RunningIn) -> RunningIn:
    limit = counter.limit
    if limit is not None and counter.running >= limit:
        raise ConcurrencyQuotaExceeded(counter.environment, limit)
    counter.running += 1
    return counter
