from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from nova.core.counters import DaemonCounters
from nova.core.models import FunctionConfig
from nova.pool.deployment import Deployment
from nova.pool.function_pool import FunctionPool, PoolLimits
from nova.pool.launcher import SandboxLauncher
from nova.sandbox.fake import FakeBackend
from nova.sandbox.registry import BackendRegistry

MakeDeployment = Callable[..., Deployment]


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend(start_delay_s=0.02)


@pytest.fixture
def make_deployment(tmp_path: Path) -> MakeDeployment:
    def make(code: str = "v1", **config: object) -> Deployment:
        code_dir = tmp_path / "code" / code
        code_dir.mkdir(parents=True, exist_ok=True)
        (code_dir / "handler.py").write_text(f"# {code}\n")
        base = FunctionConfig(name="fn", runtime="python", handler="handler.handler")
        return Deployment(
            function_id="fn-id",
            config=dataclasses.replace(base, **config),  # type: ignore[arg-type]
            version="$LATEST",
            code_hash=code,
            code_dir=code_dir,
            interpreter="/usr/bin/python3",
            hot_reload=True,
        )

    return make


@pytest.fixture
def limits() -> PoolLimits:
    return PoolLimits(queue_timeout_s=2.0, max_queue=100, health_check_timeout_s=0.5)


@pytest.fixture
async def pool(
    backend: FakeBackend, make_deployment: MakeDeployment, limits: PoolLimits, tmp_path: Path
) -> AsyncIterator[FunctionPool]:
    launcher = SandboxLauncher(
        BackendRegistry.single(backend),
        tmp_path / "instances",
        start_timeout_s=2.0,
        max_message_bytes=1 << 20,
    )
    function_pool = FunctionPool(make_deployment(), launcher, limits, DaemonCounters())
    yield function_pool
    await function_pool.close()
