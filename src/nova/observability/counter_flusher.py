"""Running totals kept across restarts: this daemon's counts are added to the store's.

Every ``interval_s`` (and once more at shutdown, after the drain) the counts made since the last
flush go to the store as deltas, so several daemons sharing one store add to the same totals and
a restart continues them. A flush that fails is carried into the next one, so what was counted
while the store was away is not lost; a daemon killed with SIGKILL loses at most its last
interval's counts (the invocation records themselves are never lost: see invocation_logs).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Protocol

from nova.core.counters import COUNTER_NAMES, DaemonCounters
from nova.core.errors import NovaError
from nova.core.periodic import Periodic

logger = logging.getLogger(__name__)


class Totals(Protocol):
    async def add(self, deltas: Mapping[str, int]) -> None: ...

    async def totals(self) -> dict[str, int]: ...


class CounterFlusher:
    def __init__(self, totals: Totals, counters: DaemonCounters, interval_s: float) -> None:
        self._totals = totals
        self._counters = counters
        self._flushed = dict.fromkeys(COUNTER_NAMES, 0)
        self._loop = Periodic(
            "counter-flusher", interval_s, self.flush, logger, "cannot store the running totals yet"
        )

    def pending(self) -> dict[str, int]:
        """What this daemon counted that the store does not hold yet."""
        current = self._counters.as_dict()
        return {name: current[name] - self._flushed[name] for name in COUNTER_NAMES}

    async def flush(self) -> None:
        """Add the pending counts to the store; ``StoreUnavailable`` leaves them pending."""
        deltas = self.pending()
        if not any(deltas.values()):
            return
        await self._totals.add(deltas)
        for name, value in deltas.items():  # not the current counts: more may have come meanwhile
            self._flushed[name] += value

    async def totals(self) -> dict[str, int]:
        """Every daemon's totals as stored, plus what this one has not flushed yet."""
        stored = await self._totals.totals()
        return {name: stored.get(name, 0) + delta for name, delta in self.pending().items()}

    def start(self) -> None:
        self._loop.start()  # a failed flush leaves its counts pending for the next one

    async def close(self) -> None:
        """Stop the loop and flush what is left (call after the drain, before the store closes)."""
        await self._loop.close()
        try:
            await self.flush()
        except NovaError as exc:
            logger.warning("running totals since the last flush are lost: %s", exc.message)
