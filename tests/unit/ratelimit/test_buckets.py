"""Token buckets in memory and in Redis, and the ASGI gate that spends them."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator

import httpx
import pytest
from redis.exceptions import RedisError
from starlette.types import Receive, Scope, Send

from nova.api.rate_limit import RateLimitGate, credential_key
from nova.ratelimit.buckets import MemoryBuckets, Tier, reset_s, retry_after_s
from nova.ratelimit.policy import RatePolicy
from nova.ratelimit.redis_buckets import RedisBuckets
from tests.store.backends import _unreachable

SLOW = Tier("slow", rps=0.5, burst=2)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_refills_at_its_rate() -> None:
    clock = Clock()
    buckets = MemoryBuckets(clock)
    first, second, third = (buckets.take("k", SLOW) for _ in range(3))
    assert first == (True, 1.0)
    assert second == (True, 0.0)
    assert third == (False, 0.0)
    assert retry_after_s(SLOW, third[1]) == pytest.approx(2.0)
    assert reset_s(SLOW, third[1]) == pytest.approx(4.0)
    assert buckets.take("other", SLOW)[0]  # every key has its own bucket
    clock.now += 1.0
    assert buckets.take("k", SLOW) == (False, 0.5)  # half a token
    clock.now += 1.0
    assert buckets.take("k", SLOW)[0]
    clock.now += 1000
    assert buckets.take("k", SLOW) == (True, 1.0)  # never more than the burst


def test_credential_key_hashes_tokens_and_falls_back_to_the_address() -> None:
    def scope(*headers: tuple[bytes, bytes]) -> Scope:
        return {"headers": list(headers), "client": ("10.0.0.7", 5555)}

    bearer = credential_key(scope((b"authorization", b"Bearer abc")))
    assert bearer == credential_key(scope((b"x-api-key", b"abc")))
    assert bearer.startswith("key:")
    assert "abc" not in bearer
    assert len(bearer) == 4 + 16
    assert credential_key(scope()) == "ip:10.0.0.7"


async def _hello(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


@pytest.fixture
async def gated() -> AsyncIterator[httpx.AsyncClient]:
    tiers = {"default": SLOW, "gold": Tier("gold", 1000, 1000), "fn": Tier("fn", 0.5, 1)}
    vip = credential_key({"headers": [(b"x-api-key", b"vip")]})
    policy = RatePolicy(tiers, "default", {vip: "gold"}, {"capped": "fn"})
    gate = RateLimitGate(_hello, policy, MemoryBuckets())
    transport = httpx.ASGITransport(app=gate)
    async with httpx.AsyncClient(transport=transport, base_url="http://nova") as client:
        yield client


async def test_the_gate_answers_429_with_headers(gated: httpx.AsyncClient) -> None:
    ok = await gated.get("/functions")
    assert ok.status_code == 200
    assert (ok.headers["x-ratelimit-limit"], ok.headers["x-ratelimit-remaining"]) == ("2", "1")
    await gated.get("/functions")
    refused = await gated.post("/functions/x/invoke")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "RateLimit.Exceeded"
    assert refused.headers["retry-after"] == "2"
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert refused.headers["x-ratelimit-reset"] == "4"
    assert (await gated.get("/health/live")).status_code == 200  # probes are never limited
    vip = {"X-API-Key": "vip"}
    assert all([(await gated.get("/functions", headers=vip)).status_code == 200 for _ in range(5)])


async def test_a_function_budget_is_shared_by_every_caller(gated: httpx.AsyncClient) -> None:
    first = await gated.post("/functions/capped:prod/invoke", headers={"X-API-Key": "vip"})
    assert first.status_code == 200
    assert first.headers["x-ratelimit-remaining"] == "0"  # the tighter budget is reported
    other = await gated.post("/functions/capped/invoke", headers={"X-API-Key": "someone"})
    assert other.status_code == 429
    assert (await gated.post("/functions/free/invoke", headers={"X-API-Key": "vip"})).is_success


def redis_url() -> str:
    return os.environ.get("NOVA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def test_redis_buckets_share_one_budget() -> None:
    prefix = f"nova-test:{secrets.token_hex(6)}:"
    first, second = RedisBuckets(redis_url(), prefix), RedisBuckets(redis_url(), prefix)
    try:
        try:
            await first._client.ping()
        except (OSError, RedisError) as exc:
            _unreachable(f"Redis at {redis_url()} is unreachable ({exc})")
        assert (await first.take("k", SLOW))[0]
        assert (await second.take("k", SLOW))[0]
        allowed, tokens = await first.take("k", SLOW)
        assert not allowed
        assert 0 < retry_after_s(SLOW, tokens) <= 2.0
        assert (await second.take("other", SLOW))[0]
    finally:
        await first.close()
        await second.close()


async def test_unreachable_redis_lets_requests_through() -> None:
    buckets = RedisBuckets("redis://127.0.0.1:1/0", "nova-test:")
    try:
        assert all([(await buckets.take("k", SLOW))[0] for _ in range(3)])
    finally:
        await buckets.close()
