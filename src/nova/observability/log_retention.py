"""Invocation-log retention: records older than the retention age, and each function's records
beyond the newest ``keep_per_function``, are deleted in rounds.

An environment whose quotas set ``log_retention_days`` keeps its records that long instead:
each sweep deletes its older records by that age, and the daemon-wide age skips it.

Records outlive their function (a deleted function's history stays readable at
``GET /invocations?function=NAME``) until they age out here; nothing else deletes them.
Each round deletes a bounded number of the oldest records, so the store's write lock (one
writer at a time on SQLite) is never held long while invocations are being logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Protocol

from nova.core.periodic import Periodic
from nova.core.quotas import AllQuotas
from nova.core.tenancy import Environment

logger = logging.getLogger(__name__)

ROUND_LIMIT = 5000


class ExpiringLogs(Protocol):
    async def delete_older_than(
        self,
        cutoff: datetime,
        limit: int,
        *,
        environment: Environment | None = None,
        excluding: Sequence[Environment] = (),
    ) -> int: ...

    async def delete_beyond_count(self, keep: int, limit: int) -> int: ...


class LogRetention:
    def __init__(
        self,
        logs: ExpiringLogs,
        retention_days: float,
        interval_s: float,
        keep_per_function: int = 0,  # 0: no limit by count
        quotas: AllQuotas | None = None,  # None: no environment has a retention of its own
    ) -> None:
        self._logs = logs
        self._retention = timedelta(days=retention_days)
        self._keep = keep_per_function
        self._quotas = quotas
        self._loop = Periodic(
            "invocation-log-retention",
            interval_s,
            self._sweep,
            logger,
            "invocation-log retention failed",
            immediately=True,
        )
        self.deleted = 0

    def start(self) -> None:
        # 0 days, no count and no environment's own retention: keep everything.
        if self._retention or self._keep or self._quotas is not None:
            self._loop.start()

    @property
    def running(self) -> bool:
        return self._loop.running

    async def expire(self) -> int:
        """Delete every record past the retention age or count now; returns how many went."""
        total = 0
        now = datetime.now(UTC)
        # Read first: should it fail, the daemon-wide age must not sweep what these keep longer.
        own = await self._own_retention()
        for environment, days in own.items():
            cutoff = now - timedelta(days=days)
            delete = partial(self._logs.delete_older_than, environment=environment)
            total += await self._in_rounds(partial(delete, cutoff, ROUND_LIMIT))
        if self._retention:
            delete = partial(self._logs.delete_older_than, excluding=list(own))
            total += await self._in_rounds(partial(delete, now - self._retention, ROUND_LIMIT))
        if self._keep:
            keep = self._keep
            total += await self._in_rounds(
                lambda: self._logs.delete_beyond_count(keep, ROUND_LIMIT)
            )
        self.deleted += total
        return total

    async def _own_retention(self) -> dict[Environment, float]:
        """The environments whose quotas set their own retention, with it in days."""
        if self._quotas is None:
            return {}
        return {
            environment: quotas.log_retention_days
            for environment, quotas in (await self._quotas()).items()
            if quotas.log_retention_days is not None
        }

    async def _sweep(self) -> None:
        deleted = await self.expire()
        if deleted:
            logger.info(
                "deleted %d invocation log record(s) (retention: %s, %s per function)",
                deleted,
                self._retention or "no age limit",
                self._keep or "no count limit",
            )

    async def _in_rounds(self, delete_round: Callable[[], Awaitable[int]]) -> int:
        total = 0
        while True:
            deleted = await delete_round()
            total += deleted
            if deleted < ROUND_LIMIT or self._loop.closing:  # closing: the rest waits
                return total
            await asyncio.sleep(0.05)  # let invocation logging have the lock between rounds

    async def close(self) -> None:
        """Stop after the delete in progress (never in the middle of its transaction)."""
        await self._loop.close()
