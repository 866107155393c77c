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

from nova.api.errors import error_body
from nova.ratelimit.buckets import Decision, MemoryBuckets, SharedBuckets, Tier
from nova.ratelimit.policy import RateLimited, RatePolicy

_INVOKE = re.compile(r"^/functions/([^/:]+)(?::[^/]*)?/invoke$")
_BEARER = b"bearer "


def credential_key(scope: Scope) -> str:
    """Whose budget a request spends: the one place to change when requests carry a
    principal. For now the first 16 hex digits of the SHA-256 of its API key or bearer token
    (``key:…``), else its client address (``ip:…``)."""
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
        decision = await self._take(key, self._policy.tier_of(key))
        if decision.allowed and self._policy.limits_functions:
            decision = await self._function_decision(scope["path"], decision)
        headers = _headers(decision)
        if not decision.allowed:
            await _refuse(decision, headers, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *headers]
            await send(message)

        await self._app(scope, receive, send_with_headers)

    async def _take(self, key: str, tier: Tier) -> Decision:
        if self._memory is not None:
            return self._memory.take(key, tier)  # no await: the in-memory check never suspends
        if self._shared is None:  # cannot happen: the constructor sets one of the two
            raise TypeError("RateLimitGate has no buckets")
        return await self._shared.take(key, tier)

    async def _function_decision(self, path: str, decision: Decision) -> Decision:
        """The function's own budget, for an invoke of a function that has one."""
        match = _INVOKE.match(path)
        if match is None:
            return decision
        tier = self._policy.function_tier(match.group(1))
        if tier is None:
            return decision
        function = await self._take(f"fn:{match.group(1)}", tier)
        # The answer reports the tighter of the two budgets.
        tighter = not function.allowed or function.remaining < decision.remaining
        return function if tighter else decision


def _headers(decision: Decision) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"x-ratelimit-limit", b"%d" % decision.limit),
        (b"x-ratelimit-remaining", b"%d" % decision.remaining),
        (b"x-ratelimit-reset", b"%d" % math.ceil(decision.reset_s)),
    ]
    if not decision.allowed:
        headers.append((b"retry-after", b"%d" % max(1, math.ceil(decision.retry_after_s))))
    return headers


async def _refuse(decision: Decision, headers: list[tuple[bytes, bytes]], send: Send) -> None:
    wait = max(1, math.ceil(decision.retry_after_s))
    error = RateLimited(
        f"rate limit reached: {decision.limit} requests at once, refilled over time; "
        f"retry after {wait}s (X-RateLimit-* headers show the budget)"
    )
    body = error_body(error.code, error.message)
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
