"""FunctionPool on the fake backend: slot hand-out, single flight, reload, reaping, failures."""

from __future__ import annotations

import asyncio

import pytest

from nova.core.counters import DaemonCounters
from nova.core.errors import FunctionNotFound, SandboxError, TooManyRequests
from nova.pool.function_pool import FunctionPool
from nova.pool.instance import PooledInstance
from nova.sandbox.fake import FakeBackend
from nova.sandbox.registry import BackendRegistry
from tests.unit.pool.conftest import MakeDeployment


async def _use(pool: FunctionPool, hold_s: float = 0.01) -> tuple[PooledInstance, bool]:
    instance, cold = await pool.acquire()
    await asyncio.sleep(hold_s)
    pool.release(instance)
    return instance, cold


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0.01)


async def test_warm_instance_is_reused(pool: FunctionPool, backend: FakeBackend) -> None:
    first, first_cold = await _use(pool)
    second, second_cold = await _use(pool)
    assert (first_cold, second_cold) == (True, False)
    assert first is second
    assert len(backend.started) == 1


async def test_fifty_concurrent_cold_requests_start_at_most_max_replicas(
    pool: FunctionPool, backend: FakeBackend, make_deployment: MakeDeployment
) -> None:
    pool.update(make_deployment(max_replicas=5))
    results = await asyncio.gather(*(_use(pool, 0.02) for _ in range(50)))
    assert len(results) == 50
    assert len(backend.started) == 5


async def test_single_flight_with_instance_concurrency(
    pool: FunctionPool, backend: FakeBackend, make_deployment: MakeDeployment
) -> None:
    pool.update(make_deployment(max_replicas=10, instance_concurrency=25))
    await asyncio.gather(*(_use(pool, 0.05) for _ in range(50)))
    assert len(backend.started) == 2  # ceil(50 / 25): one start per 25 waiters, not one each


async def test_waiting_past_queue_timeout_is_throttled(
    backend: FakeBackend, make_deployment: MakeDeployment, tmp_path: object
) -> None:
    from nova.pool.function_pool import PoolLimits
    from nova.pool.launcher import SandboxLauncher

    launcher = SandboxLauncher(BackendRegistry.single(backend), tmp_path / "i", 2.0, 1 << 20)  # type: ignore[operator]
    pool = FunctionPool(
        make_deployment(max_replicas=1), launcher, PoolLimits(0.1, 10, 0.5), DaemonCounters()
    )
    held, _ = await pool.acquire()
    with pytest.raises(TooManyRequests):
        await pool.acquire()
    pool.release(held)
    instance, cold = await pool.acquire()  # the queue recovered once the slot came back
    assert instance is held
    assert not cold
    pool.release(instance)
    await pool.close()


async def test_full_queue_is_refused_at_once(
    backend: FakeBackend, make_deployment: MakeDeployment, tmp_path: object
) -> None:
    from nova.pool.function_pool import PoolLimits
    from nova.pool.launcher import SandboxLauncher

    launcher = SandboxLauncher(BackendRegistry.single(backend), tmp_path / "i", 2.0, 1 << 20)  # type: ignore[operator]
    pool = FunctionPool(
        make_deployment(max_replicas=1), launcher, PoolLimits(5.0, 1, 0.5), DaemonCounters()
    )
    held, _ = await pool.acquire()
    waiting = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0)
    with pytest.raises(TooManyRequests, match="queued"):
        await pool.acquire()
    pool.release(held)
    instance, _ = await waiting
    pool.release(instance)
    await pool.close()


async def test_code_change_hot_reloads_idle_instances(
    pool: FunctionPool, backend: FakeBackend, make_deployment: MakeDeployment
) -> None:
    await _use(pool)
    v2 = make_deployment(code="v2")
    pool.update(v2)
    await _settle()
    instance, cold = await _use(pool)
    assert not cold  # the same instance, reloaded, not a new one
    assert len(backend.started) == 1
    assert backend.started[0].code_source == v2.code_dir  # drained, replaced, then reloaded
    assert backend.started[0].code_hash == "v2"
    assert instance.code_hash == "v2"


async def test_a_request_during_a_reload_waits_for_it_instead_of_a_cold_start(
    pool: FunctionPool, backend: FakeBackend, make_deployment: MakeDeployment
) -> None:
    first, _ = await _use(pool)
    pool.update(make_deployment(code="v2"))  # the reload begins now; it takes a few round trips
    instance, cold = await pool.acquire()
    pool.release(instance)
    await _settle()
    assert (instance, cold) == (first, False)
    assert instance.code_hash == "v2"
    assert len(backend.started) == 1  # no sandbox was started for the request


async def test_an_instance_whose_code_cannot_be_replaced_is_replaced(
    pool: FunctionPool, backend: FakeBackend, make_deployment: MakeDeployment
) -> None:
    await _use(pool)
    backend.started[0].disk_full = True
    pool.update(make_deployment(code="v2"))
    await _settle()
    assert backend.started[0].killed
    instance, cold = await _use(pool)
    assert cold
    assert instance.code_hash == "v2"
    assert backend.started[1].code_source.name == "v2"  # started on the new code


async def test_busy_instance_reloads_after_its_invocation(
    pool: FunctionPool, backend: FakeBackend, make_deployment: MakeDeployment
) -> None:
    busy, _ = await pool.acquire()
    pool.update(make_deployment(code="v2"))
    await _settle()
    assert backend.started[0].code_hash == "initial"  # never reloaded under a running call
    pool.release(busy)
    await _settle()
    assert backend.started[0].code_hash == "v2"


async def test_config_change_replaces_instances(
    pool: FunctionPool, backend: FakeBackend, make_deployment: MakeDeployment
) -> None:
    await _use(pool)
    pool.update(make_deployment(memory_mb=256))
    await _settle()
    assert backend.started[0].killed
    await _use(pool)
    assert len(backend.started) == 2
    assert backend.live == [backend.started[1]]


async def test_idle_instances_are_reaped_down_to_min_replicas(
    pool: FunctionPool, backend: FakeBackend, make_deployment: MakeDeployment
) -> None:
    pool.update(make_deployment(min_replicas=1, max_replicas=3))
    await asyncio.gather(*(_use(pool, 0.05) for _ in range(3)))
    assert len(backend.live) == 3
    reaped = await pool.reap_idle(idle_ttl_s=0)
    assert reaped == 2
    assert len(backend.live) == 1


async def test_min_replicas_are_prewarmed(
    pool: FunctionPool, backend: FakeBackend, make_deployment: MakeDeployment
) -> None:
    pool.update(make_deployment(min_replicas=2))
    await _settle()
    await asyncio.sleep(0.05)
    assert len(backend.live) == 2
    assert pool.stats().idle == 2


async def test_crashed_instance_is_replaced(pool: FunctionPool, backend: FakeBackend) -> None:
    instance, _ = await pool.acquire()
    await instance.sandbox.kill()  # the agent goes away while idle-to-be
    pool.release(instance, broken=True)
    await _settle()
    replacement, cold = await _use(pool)
    assert cold
    assert replacement is not instance


async def test_health_check_removes_unresponsive_instances(
    pool: FunctionPool, backend: FakeBackend
) -> None:
    await _use(pool)
    fake = backend.started[0]
    fake.hung = True  # the agent stops answering but its connection stays open
    removed = await pool.check_health()
    assert removed == 1
    assert fake.killed


async def test_start_failure_reaches_the_waiter(pool: FunctionPool, backend: FakeBackend) -> None:
    backend.fail_starts = 1
    with pytest.raises(SandboxError, match="fake start failure"):
        await pool.acquire()
    _, cold = await _use(pool)  # the next request starts a healthy instance
    assert cold


async def test_close_fails_waiters_and_kills_instances(
    pool: FunctionPool, backend: FakeBackend, make_deployment: MakeDeployment
) -> None:
    from nova.core.errors import FunctionNotFound

    pool.update(make_deployment(max_replicas=1))
    held, _ = await pool.acquire()
    waiting = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0)
    await pool.close()
    with pytest.raises(FunctionNotFound):
        await waiting
    assert held.sandbox.alive() is False


async def test_retire_stops_what_is_still_busy_once_the_grace_runs_out(
    pool: FunctionPool, backend: FakeBackend, make_deployment: MakeDeployment
) -> None:
    pool.update(make_deployment(max_replicas=1))
    held, _ = await pool.acquire()  # an invocation that never comes back
    waiter = asyncio.create_task(pool.acquire())
    await _settle()
    await asyncio.wait_for(pool.retire(grace_s=0.1), 2.0)
    assert backend.started[0].killed
    with pytest.raises(FunctionNotFound):
        await waiter  # queued requests are refused, not served by a dying pool
    with pytest.raises(FunctionNotFound):
        await pool.acquire()
    pool.release(held)
