"""The environment registry: quotas validated and merged, the default protected, and the
request path served from a short cache that another daemon's change outlives by at most it."""

from __future__ import annotations

import pytest

from nova.core.errors import RequestInvalid
from nova.core.quotas import Quotas
from nova.core.tenancy import (
    DEFAULT_ENVIRONMENT,
    Environment,
    EnvironmentNotFound,
    EnvironmentProtected,
)
from nova.environments.registry import EnvironmentRegistry
from nova.store.memory import MemoryStore

PROD = Environment("acme", "shop", "prod")


async def test_quotas_are_validated_and_merged() -> None:
    registry = EnvironmentRegistry(MemoryStore().environments)
    created = await registry.create("acme/shop/prod", {"max_functions": 5})
    assert created.quotas == Quotas(max_functions=5)
    changed = await registry.set_quotas(PROD, {"max_memory_mb": 256.0, "max_functions": None})
    assert changed.quotas == Quotas(max_memory_mb=256)
    assert isinstance(changed.quotas.max_memory_mb, int)
    for bad in ({"max_things": 1}, {"max_functions": 0}, {"max_functions": 1.5}):
        with pytest.raises(RequestInvalid):
            await registry.set_quotas(PROD, bad)
    assert await registry.all_quotas() == {PROD: Quotas(max_memory_mb=256)}


async def test_the_default_environment_cannot_be_deleted() -> None:
    registry = EnvironmentRegistry(MemoryStore().environments)
    with pytest.raises(EnvironmentProtected):
        await registry.delete(DEFAULT_ENVIRONMENT)
    await registry.require(DEFAULT_ENVIRONMENT)


async def test_require_is_cached_for_cache_s() -> None:
    store = MemoryStore()
    now = [0.0]
    here = EnvironmentRegistry(store.environments, cache_s=2.0, clock=lambda: now[0])
    elsewhere = EnvironmentRegistry(store.environments)  # another daemon on the same store
    with pytest.raises(EnvironmentNotFound):
        await here.require(PROD)
    await elsewhere.create("acme/shop/prod", {"max_concurrency": 2})
    await here.require(PROD)
    assert await here.quotas(PROD) == Quotas(max_concurrency=2)
    await elsewhere.set_quotas(PROD, {"max_concurrency": 9})
    now[0] = 1.9
    assert await here.quotas(PROD) == Quotas(max_concurrency=2)  # cached
    now[0] = 2.1
    assert await here.quotas(PROD) == Quotas(max_concurrency=9)
    await elsewhere.delete(PROD)
    now[0] = 5.0
    with pytest.raises(EnvironmentNotFound):
        await here.require(PROD)
