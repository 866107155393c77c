"""EnvironmentConcurrency: counts per environment under its quota, read once per environment
and refreshed in the background."""

from __future__ import annotations

import asyncio

import pytest

from nova.core.errors import StoreUnavailable
from nova.core.quotas import ConcurrencyQuotaExceeded, Quotas
from nova.core.tenancy import DEFAULT_ENVIRONMENT, Environment
from nova.executor.env_concurrency import EnvironmentConcurrency

PROD = Environment("acme", "shop", "prod")


class Source:
    """A QuotaSource that counts its reads and can fail."""

    def __init__(self, **limits: int) -> None:
        self.limits = {PROD: Quotas(max_concurrency=limits.get("prod"))}
        self.reads = 0
        self.failing = False

    async def __call__(self, environment: Environment) -> Quotas:
        self.reads += 1
        if self.failing:
            raise StoreUnavailable("the store is away")
        return self.limits.get(environment, Quotas())


async def test_functions_of_one_environment_share_its_limit() -> None:
    source = Source(prod=2)
    counts = EnvironmentConcurrency(source)
    assert counts.enter("acme.shop.prod.a") is None  # not seen yet
    first = await counts.enter_first("acme.shop.prod.a")
    second = await counts.enter_first("acme.shop.prod.b")
    with pytest.raises(ConcurrencyQuotaExceeded):
        counts.enter("acme.shop.prod.a")
    assert counts.running(PROD) == 2
    assert source.reads == 1  # once per environment, not per function or call
    first.release()
    third = counts.enter("acme.shop.prod.b")
    assert third is second
    assert counts.running(PROD) == 2


async def test_the_default_environment_without_quotas_only_counts() -> None:
    counts = EnvironmentConcurrency(Source())
    entered = [await counts.enter_first("fn")] + [counts.enter("fn") for _ in range(100)]
    assert counts.running(DEFAULT_ENVIRONMENT) == 101
    for counter in entered:
        assert counter is not None
        counter.release()
    assert counts.running(DEFAULT_ENVIRONMENT) == 0


async def test_a_changed_quota_applies_after_the_background_refresh() -> None:
    source = Source(prod=1)
    counts = EnvironmentConcurrency(source, refresh_s=0.01)
    await counts.enter_first("acme.shop.prod.a")
    with pytest.raises(ConcurrencyQuotaExceeded):
        counts.enter("acme.shop.prod.a")
    counts.start()
    try:
        source.limits[PROD] = Quotas(max_concurrency=2)
        await asyncio.sleep(0.05)
        assert counts.enter("acme.shop.prod.a") is not None
        # The store away: the last limit seen stays, invocations are not refused for it.
        source.failing = True
        await asyncio.sleep(0.05)
        with pytest.raises(ConcurrencyQuotaExceeded, match="is running 2"):
            counts.enter("acme.shop.prod.a")
    finally:
        await counts.close()


async def test_quotas_that_cannot_be_read_at_first_sight_do_not_refuse() -> None:
    source = Source(prod=1)
    source.failing = True
    counts = EnvironmentConcurrency(source)
    await counts.enter_first("acme.shop.prod.a")
    assert counts.enter("acme.shop.prod.a") is not None  # no limit known yet
    source.failing = False
    await counts.refresh()
    with pytest.raises(ConcurrencyQuotaExceeded):
        counts.enter("acme.shop.prod.a")
