"""Choosing the version of a weighted alias for one invocation.

Without a routing key the choice follows a golden-ratio sequence from a random start: its
points spread evenly over [0, 100) from the first call, so even a few hundred invocations
split within a fraction of a point of the weights (independent random draws would wander by
several points). With a routing key (``X-Nova-Routing-Key``) the choice is a hash of the key,
so one caller keeps landing on one version, on every daemon and across restarts.
"""

from __future__ import annotations

import random
import zlib

from nova.core.versions import TOTAL_WEIGHT, Routing

_GOLDEN = (5**0.5 - 1) / 2  # 0.618...: consecutive multiples never bunch up


class WeightedChoice:
    def __init__(self, routing: Routing) -> None:
        self.routing = routing
        self._only = routing[0].version if len(routing) == 1 else None
        self._first, self._first_weight = routing[0].version, routing[0].weight
        self._second = routing[-1].version
        self._point = random.random()

    def pick(self, routing_key: str | None) -> int:
        if self._only is not None:
            return self._only
        if routing_key is not None:
            bucket = zlib.crc32(routing_key.encode()) % TOTAL_WEIGHT
        else:
            self._point = (self._point + _GOLDEN) % 1.0
            bucket = int(self._point * TOTAL_WEIGHT)
        return self._first if bucket < self._first_weight else self._second
