from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nova.code.cache import CodeCache
from nova.code.policy import CodePolicy
from nova.core.counters import DaemonCounters
from nova.functions.deployer import Deployer
from nova.functions.resolver import FunctionResolver
from nova.functions.rules import FunctionLimits
from nova.functions.service import FunctionService
from nova.pool.function_pool import PoolLimits
from nova.pool.launcher import SandboxLauncher
from nova.pool.manager import PoolManager
from nova.runtimes.compiler import Compiler
from nova.runtimes.dependencies import DependencyBuilder
from nova.runtimes.registry import BUILTIN_RUNTIMES, RuntimeRegistry, RuntimeStatus
from nova.sandbox.base import BackendInfo
from nova.sandbox.fake import FakeBackend
from nova.sandbox.registry import BackendRegistry
from nova.store.memory import MemoryStore

CODE_POLICY = CodePolicy(max_upload_bytes=1 << 20, max_files=100, max_unpacked_bytes=1 << 20)
LIMITS = FunctionLimits(
    max_memory_mb=10240, max_timeout_s=900, max_replicas=1000, max_instance_concurrency=8
)
GVISOR_MISSING = BackendInfo("gvisor", False, "runsc is not installed", "gVisor", False)


def runtimes() -> RuntimeRegistry:
    python, node = BUILTIN_RUNTIMES[:2]
    return RuntimeRegistry(
        [
            RuntimeStatus(python, True, "/usr/bin/python3", "Python 3", "ok"),
            RuntimeStatus(node, True, "/usr/bin/node", "v20", "ok"),
            RuntimeStatus(BUILTIN_RUNTIMES[2], True, "/bin/sh", "bootstrap", "ok"),
        ]
    )


def backends(fake: FakeBackend) -> BackendRegistry:
    return BackendRegistry("fake", {"fake": fake}, [fake.info, GVISOR_MISSING])


@dataclass
class Functions:
    store: MemoryStore
    service: FunctionService
    code_dir: Path


@pytest.fixture
async def functions(tmp_path: Path) -> AsyncIterator[Functions]:
    """A FunctionService on the in-memory store and the fake backend; code under code_dir."""
    store = MemoryStore()
    registry = backends(FakeBackend())
    pools = PoolManager(
        SandboxLauncher(registry, tmp_path / "instances", 2.0, 1 << 20),
        PoolLimits(1.0, 100, 0.5),
        idle_ttl_s=60,
        cleanup_interval_s=60,
        health_check_interval_s=60,
        counters=DaemonCounters(),
    )
    code_dir = tmp_path / "code"
    deployer = Deployer(
        store,
        pools,
        CodeCache(code_dir),
        runtimes(),
        registry,
        DependencyBuilder(code_dir.parent / "builds", 60),
        Compiler(code_dir.parent / "compiled", code_dir.parent / "toolchain-cache", 60, 1),
        60,
    )
    resolver = FunctionResolver(store, deployer)
    service = FunctionService(store, resolver, deployer, runtimes(), registry, CODE_POLICY, LIMITS)
    yield Functions(store, service, code_dir)
    await pools.close()
    await store.close()
