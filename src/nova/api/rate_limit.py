"""The rate-limit gate: a bare ASGI middleware in front of everything but /health.

Installed only when ``rate_limits.enabled`` (the daemon decides), so a daemon without limits
pays nothing. Each request takes a token from its credential's bucket (and from its function's,
for an invoke of a function listed in ``rate_limits.functions``); a refused one gets 429
``RateLimit.Exceeded`` with ``Retry-After``, every answer the ``X-RateLimit-*`` headers.
"""

from __future__ import annotations

import hashlib
import math
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nova.api.auth_gate import key_of
from nova.api.errors import error_body
from nova.ratelimit.buckets import (
    MemoryBuckets,
    SharedBuckets,
    Taken,
    Tier,
    reset_s,
    retry_after_s,
)
from nova.ratelimit.policy import RateLimited, RatePolicy

_INVOKE = re.compile(r"^/functions/([^/:]+)(?::[^/]*)?/invoke$")
_BEARER = b"bearer "


def credential_key(scope: Scope) -> str:
    """Whose budget a request spends: its verified API key's (``key:<name>``); with
    authentication off, the first 16 hex digits of the SHA-256 of the key or bearer token it
    sent (``key:…``), else its client address (``ip:…``)."""
    key = key_of(scope)
    if key is not None:
        return "key:" + key.name
    for name, value in scope["headers"]:
        if name == b"authorization" or name == b"x-api-key":
            token = value[len(_BEARER) :] if value[:7].lower() == _BEARER else value
            return "key:" + hashlib.sha256(token.strip()).hexdigest()[:16]
    client = scope.get("client")
    return "ip:" + (client[0] if client else "unknown")


class RateLimitGate:
    def __init__(
        self, app: ASGIApp, policy: RatePolicy, buckets: MemoryBuckets | SharedBuckets
    ) -> None:
        self._app = app
        self._policy = policy
        self._memory = buckets if isinstance(buckets, MemoryBuckets) else None
        self._shared = None if isinstance(buckets, MemoryBuckets) else buckets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/health"):
            await self._app(scope, receive, send)
            return
        key = credential_key(scope)
        tier = self._policy.tier_of(key)
        memory = self._memory
        if memory is not None:  # no await: the in-memory check never suspends
            allowed, tokens = memory.take(key, tier)
        else:
            allowed, tokens = await self._take(key, tier)
        if allowed and self._policy.limits_functions:
            tier, allowed, tokens = await self._function_budget(scope["path"], tier, tokens)
        if not allowed:
            await _refuse(tier, tokens, send)
            return
        headers = _headers(tier, tokens)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message["headers"], *headers]
            await send(message)

        await self._app(scope, receive, send_with_headers)

    async def _take(self, key: str, tier: Tier) -> Taken:
        memory = self._memory
        if memory is not None:
            return memory.take(key, tier)
        if self._shared is None:  # cannot happen: the constructor sets one of the two
            raise TypeError("RateLimitGate has no buckets")
        return await self._shared.take(key, tier)

    async def _function_budget(
        self, path: str, tier: Tier, tokens: float
    ) -> tuple[Tier, bool, float]:
        """The function's own budget too, for an invoke of a function that has one; the
        answer reports the tighter of the two."""
        match = _INVOKE.match(path)
        function_tier = self._policy.function_tier(match.group(1)) if match else None
        if match is None or function_tier is None:
            return tier, True, tokens
        allowed, left = await self._take(f"fn:{match.group(1)}", function_tier)
        if not allowed or left < tokens:
            return function_tier, allowed, left
        return tier, True, tokens


def _headers(tier: Tier, tokens: float) -> list[tuple[bytes, bytes]]:
    return [
        (b"x-ratelimit-limit", b"%d" % tier.burst),
        (b"x-ratelimit-remaining", b"%d" % tokens),  # %d floors; tokens is never negative
        (b"x-ratelimit-reset", b"%d" % math.ceil(reset_s(tier, tokens))),
    ]


async def _refuse(tier: Tier, tokens: float, send: Send) -> None:
    wait = max(1, math.ceil(retry_after_s(tier, tokens)))
    error = RateLimited(
        f"rate limit reached: {tier.burst} requests at once, {tier.rps:g} per second after "
        f"that; retry after {wait}s (the X-RateLimit-* headers show the budget)"
    )
    body = error_body(error.code, error.message)
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
                *_headers(tier, tokens),
                (b"retry-after", b"%d" % wait),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
