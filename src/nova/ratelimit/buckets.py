"""Token buckets: what a bucket decides, and the in-memory buckets of one daemon.

A tier is ``rps`` tokens added per second up to ``burst`` tokens; a request takes one token or
is refused. A new bucket starts full, so a quiet client may send ``burst`` requests at once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Tier:
    name: str
    rps: float
    burst: int


@dataclass(frozen=True, slots=True)
class Decision:
    """A bucket's answer: ``remaining`` whole tokens left; ``reset_s`` until it is full again;
    ``retry_after_s`` until the next request would pass (0 when this one did)."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: float
    retry_after_s: float


def decide(tier: Tier, tokens: float, allowed: bool) -> Decision:
    """The decision of a bucket holding ``tokens`` after the request was (or was not) let
    through: shared by the memory buckets and the Redis script's answer."""
    missing = tier.burst - tokens
    return Decision(
        allowed=allowed,
        limit=tier.burst,
        remaining=max(0, math.floor(tokens)),
        reset_s=max(0.0, missing / tier.rps),
        retry_after_s=0.0 if allowed else max(0.0, (1 - tokens) / tier.rps),
    )


# Past this many buckets, full ones (idle long enough to refill) are dropped: a bucket at full
# is indistinguishable from no bucket.
_PRUNE_ABOVE = 50_000


class MemoryBuckets:
    """Buckets in this process: one event loop, so no lock. ``clock`` is for tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, list[float]] = {}  # key -> [tokens, at]

    def take(self, key: str, tier: Tier) -> Decision:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= _PRUNE_ABOVE:
                self._prune(now, tier)
            bucket = self._buckets[key] = [float(tier.burst), now]
        tokens = min(float(tier.burst), bucket[0] + (now - bucket[1]) * tier.rps)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        bucket[0], bucket[1] = tokens, now
        return decide(tier, tokens, allowed)

    def _prune(self, now: float, tier: Tier) -> None:
        full_after_s = tier.burst / tier.rps
        for key, (_, at) in list(self._buckets.items()):
            if now - at >= full_after_s:
                del self._buckets[key]


class SharedBuckets(Protocol):
    """Buckets kept outside the daemon (Redis), so several daemons spend one budget."""

    async def take(self, key: str, tier: Tier) -> Decision: ...

    async def close(self) -> None: ...
