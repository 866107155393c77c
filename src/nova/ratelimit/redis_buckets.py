"""Token buckets in Redis, shared by every daemon that uses the same Redis and prefix.

One Lua script reads, refills, takes and writes a bucket atomically on the server, with the
server's clock (daemons' clocks may differ). Each bucket expires once it would be full again.
When Redis cannot be reached the request is let through (and a warning logged, at most once a
minute): a limiter that is down must not take the API down with it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis.asyncio as redis
from redis.exceptions import RedisError

from nova.ratelimit.buckets import Taken, Tier

logger = logging.getLogger(__name__)

_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = burst
  at = t
end
tokens = math.min(burst, tokens + math.max(0, t - at) * rate)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(t))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return {allowed, tostring(tokens)}
"""

_WARN_EVERY_S = 60.0


class RedisBuckets:
    def __init__(self, url: str, prefix: str) -> None:
        self._client: Any = redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self._take = self._client.register_script(_TAKE)
        self._prefix = prefix
        self._warned_at = -_WARN_EVERY_S

    async def take(self, key: str, tier: Tier) -> Taken:
        try:
            allowed, tokens = await self._take(
                keys=[f"{self._prefix}{tier.name}:{key}"], args=[tier.rps, tier.burst]
            )
        except (RedisError, OSError) as exc:
            now = time.monotonic()
            if now - self._warned_at >= _WARN_EVERY_S:
                self._warned_at = now
                logger.warning("rate limits: Redis unreachable, letting requests through: %s", exc)
            return True, float(tier.burst)
        return bool(allowed), float(tokens)

    async def close(self) -> None:
        await self._client.aclose()
