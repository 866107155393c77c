"""Token buckets: what a bucket decides, and the in-memory buckets of one daemon.

A tier is ``rps`` tokens added per second up to ``burst`` tokens; a request takes one token or
is refused. A new bucket starts full, so a quiet client may send ``burst`` requests at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Tier:
    name: str
    rps: float
    burst: int


# What a bucket answers: (allowed, tokens left after this request). A plain tuple: one is made
# per request, and the headers need nothing more.
Taken = tuple[bool, float]


def retry_after_s(tier: Tier, tokens: float) -> float:
    """How long until a bucket holding ``tokens`` has one whole token."""
    return max(0.0, (1.0 - tokens) / tier.rps)


def reset_s(tier: Tier, tokens: float) -> float:
    """How long until a bucket holding ``tokens`` is full again."""
    return (tier.burst - tokens) / tier.rps


# Past this many buckets, full ones (idle long enough to refill) are dropped: a bucket at full
# is indistinguishable from no bucket.
_PRUNE_ABOVE = 50_000


class MemoryBuckets:
    """Buckets in this process: one event loop, so no lock. ``clock`` is for tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, list[float]] = {}  # key -> [tokens, at]

    def take(self, key: str, tier: Tier) -> Taken:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= _PRUNE_ABOVE:
                self._prune(now, tier)
            bucket = self._buckets[key] = [float(tier.burst), now]
        tokens = bucket[0] + (now - bucket[1]) * tier.rps
        if tokens > tier.burst:
            tokens = float(tier.burst)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        bucket[0] = tokens
        bucket[1] = now
        return allowed, tokens

    def _prune(self, now: float, tier: Tier) -> None:
        full_after_s = tier.burst / tier.rps
        for key, (_, at) in list(self._buckets.items()):
            if now - at >= full_after_s:
                del self._buckets[key]


class SharedBuckets(Protocol):
    """Buckets kept outside the daemon (Redis), so several daemons spend one budget."""

    async def take(self, key: str, tier: Tier) -> Taken: ...

    async def close(self) -> None: ...
