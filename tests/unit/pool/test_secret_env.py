"""Secrets at the pool: the launcher resolves $SECRET: references into Init, and a changed
secret renews the instances launched before it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from nova.core.counters import DaemonCounters
from nova.core.secrets import SecretMissing, secret_refs
from nova.pool.function_pool import FunctionPool, PoolLimits
from nova.pool.launcher import SandboxLauncher
from nova.pool.manager import PoolManager
from nova.sandbox.fake import FakeBackend
from nova.sandbox.registry import BackendRegistry
from tests.unit.pool.conftest import MakeDeployment


class Vault:
    def __init__(self) -> None:
        self.values = {"db": "first-value"}
        self.read = asyncio.Event()  # set when a start has read the values

    async def resolve(self, function: str, env: Mapping[str, str]) -> dict[str, str]:
        self.read.set()
        resolved = dict(env)
        for variable, name in secret_refs(env).items():
            if name not in self.values:
                raise SecretMissing(function, variable, name)
            resolved[variable] = self.values[name]
        return resolved


def _launcher(backend: FakeBackend, tmp_path: Path, vault: Vault) -> SandboxLauncher:
    return SandboxLauncher(BackendRegistry.single(backend), tmp_path / "i", 2.0, 1 << 20, vault)


async def test_init_carries_resolved_values_and_the_instance_knows_them(
    backend: FakeBackend, make_deployment: MakeDeployment, tmp_path: Path
) -> None:
    deployment = make_deployment(env={"DB": "$SECRET:db", "PLAIN": "x"})
    instance = await _launcher(backend, tmp_path, Vault()).launch(deployment, lambda _: None)
    try:
        assert backend.started[0].init_env == {"DB": "first-value", "PLAIN": "x"}
        assert instance.secret_values == ("first-value",)
        assert deployment.config.env["DB"] == "$SECRET:db"  # the config keeps the reference
    finally:
        await instance.destroy()


async def test_a_missing_secret_fails_before_a_sandbox_starts(
    backend: FakeBackend, make_deployment: MakeDeployment, tmp_path: Path
) -> None:
    deployment = make_deployment(env={"TOKEN": "$SECRET:nope"})
    with pytest.raises(SecretMissing, match="'nope'"):
        await _launcher(backend, tmp_path, Vault()).launch(deployment, lambda _: None)
    assert backend.started == []


async def test_a_changed_secret_renews_instances_even_one_still_starting(
    make_deployment: MakeDeployment, tmp_path: Path
) -> None:
    limits = PoolLimits(queue_timeout_s=30.0, max_queue=100, health_check_timeout_s=0.5)
    backend = FakeBackend(start_delay_s=0.4)  # the change lands while the sandbox starts
    vault = Vault()
    manager = PoolManager(_launcher(backend, tmp_path, vault), limits, 60, 60, 60, DaemonCounters())
    pool: FunctionPool = manager.deploy(make_deployment(env={"DB": "$SECRET:db"}))
    try:
        waiting = asyncio.ensure_future(pool.acquire())
        await asyncio.wait_for(vault.read.wait(), 5)  # its start has read the old value
        vault.read.clear()
        vault.values["db"] = "second-value"
        assert manager.renew_secret_users("db", time.time()) == 1
        assert manager.renew_secret_users("unused", time.time()) == 0
        instance, _ = await asyncio.wait_for(waiting, 10)
        assert instance.secret_values == ("second-value",)
        assert backend.started[0].killed  # the one started with the old value never served
        pool.release(instance)
        manager.renew_secret_users("db", time.time())
        for _ in range(50):
            if backend.started[1].killed:
                break
            await asyncio.sleep(0.01)
        assert backend.started[1].killed  # an idle instance goes at once
    finally:
        await manager.close()
