"""The resolver: one (function, version) pool per reference, kept true by refresh."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nova.code.cache import CodeCache
from nova.core.counters import DaemonCounters
from nova.core.errors import AliasNotFound, FunctionNotFound, VersionNotFound
from nova.core.models import CodeBundle, CodeFile, FunctionConfig
from nova.core.versions import VersionWeight
from nova.functions.deployer import Deployer
from nova.functions.resolver import FunctionResolver
from nova.pool.function_pool import PoolLimits
from nova.pool.launcher import SandboxLauncher
from nova.pool.manager import PoolManager
from nova.runtimes.compiler import Compiler
from nova.runtimes.dependencies import DependencyBuilder
from nova.runtimes.registry import BUILTIN_RUNTIMES, RuntimeRegistry, RuntimeStatus
from nova.sandbox.fake import FakeBackend
from nova.sandbox.registry import BackendRegistry
from nova.store.memory import MemoryStore

CONFIG = FunctionConfig(name="fn", runtime="python", handler="handler.handler")


def code(text: str) -> CodeBundle:
    return CodeBundle({"handler.py": CodeFile(text.encode())})


@dataclass
class World:
    store: MemoryStore
    pools: PoolManager
    resolver: FunctionResolver
    backend: FakeBackend


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    store = MemoryStore()
    backend = FakeBackend()
    registry = BackendRegistry.single(backend)
    python = BUILTIN_RUNTIMES[0]
    runtimes = RuntimeRegistry([RuntimeStatus(python, True, "/usr/bin/python3", "3", "ok")])
    pools = PoolManager(
        SandboxLauncher(registry, tmp_path / "instances", 2.0, 1 << 20),
        PoolLimits(1.0, 100, 0.5),
        idle_ttl_s=60,
        cleanup_interval_s=60,
        health_check_interval_s=60,
        counters=DaemonCounters(),
        finish_grace_s=0.05,
    )
    deployer = Deployer(
        store,
        pools,
        CodeCache(tmp_path / "code"),
        runtimes,
        registry,
        DependencyBuilder(tmp_path / "builds", 60),
        Compiler(tmp_path / "compiled", tmp_path / "toolchain-cache", 60, 1),
        60,
    )
    yield World(store, pools, FunctionResolver(store, deployer), backend)
    await pools.close()


async def test_first_requests_share_one_load_and_versions_get_pools_of_their_own(
    world: World,
) -> None:
    await world.store.functions.create(CONFIG, code("1"))
    await world.store.versions.publish("fn", "")
    latest = await asyncio.gather(*(world.resolver.resolve("fn") for _ in range(20)))
    assert len({id(pool) for pool in latest}) == 1
    version = await world.resolver.resolve("fn", "1")
    assert version is not latest[0]
    assert (latest[0].deployment.version, version.deployment.version) == ("$LATEST", "1")
    assert await world.resolver.resolve("fn", "$LATEST") is latest[0]
    assert len(world.pools.all()) == 2


async def test_unknown_references_are_not_found(world: World) -> None:
    with pytest.raises(FunctionNotFound):
        await world.resolver.resolve("ghost")
    await world.store.functions.create(CONFIG, code("1"))
    with pytest.raises(VersionNotFound):
        await world.resolver.resolve("fn", "3")
    with pytest.raises(AliasNotFound):
        await world.resolver.resolve("fn", "prod")


async def test_refresh_follows_updates_alias_changes_and_deletions(world: World) -> None:
    store, resolver = world.store, world.resolver
    await store.functions.create(CONFIG, code("1"))
    await store.versions.publish("fn", "")
    await store.functions.update("fn", CONFIG, code("2"))
    await store.versions.publish("fn", "")
    await store.aliases.put("fn", "prod", (VersionWeight(1, 100),))
    latest = await resolver.resolve("fn")
    assert (await resolver.resolve("fn", "prod")).deployment.version == "1"

    updated = await store.functions.update("fn", CONFIG, code("3"))  # as another daemon would
    await store.aliases.put("fn", "prod", (VersionWeight(2, 100),))
    assert latest.deployment.code_hash != updated.code_hash  # not yet: nothing told it
    await resolver.refresh("fn")
    assert latest.deployment.code_hash == updated.code_hash
    assert await resolver.resolve("fn") is latest  # the same pool, moved on
    assert (await resolver.resolve("fn", "prod")).deployment.version == "2"

    await store.aliases.put("fn", "prod", (VersionWeight(2, 100),))
    await store.versions.delete("fn", 1)
    await resolver.refresh("fn")
    assert {pool.deployment.version for pool in world.pools.all()} == {"$LATEST", "2"}

    await store.functions.delete("fn")
    await resolver.refresh("fn")
    assert world.pools.all() == []
    with pytest.raises(FunctionNotFound):
        await resolver.resolve("fn")


async def test_a_late_deployment_of_an_older_revision_is_ignored(world: World) -> None:
    first = await world.store.functions.create(CONFIG, code("1"))
    pool = await world.resolver.resolve("fn")
    second = await world.store.functions.update("fn", CONFIG, code("2"))
    await world.resolver.function_changed(second, None)
    await world.resolver.function_changed(first, None)  # arrives after the newer one
    assert pool.deployment.code_hash == second.code_hash
