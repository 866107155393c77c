"""Executor + FunctionService on the fake backend and the in-memory store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from nova.code.cache import CodeCache
from nova.core.counters import DaemonCounters
from nova.core.errors import FunctionNotFound, RequestInvalid, RuntimeUnavailable, ShuttingDown
from nova.core.models import StartKind
from nova.core.quotas import ConcurrencyQuotaExceeded, Quotas
from nova.core.tenancy import Environment
from nova.executor.env_concurrency import EnvironmentConcurrency
from nova.executor.executor import Executor
from nova.functions.deployer import Deployer
from nova.functions.resolver import FunctionResolver
from nova.functions.service import CodeSource, FunctionService
from nova.observability.invocation_logs import InvocationLogBatcher, LogLimits
from nova.observability.log_spool import LogSpool
from nova.observability.metrics import InvocationMetrics
from nova.observability.tracing import InvocationTracer, tracer_provider
from nova.pool.function_pool import PoolLimits
from nova.pool.launcher import SandboxLauncher
from nova.pool.manager import PoolManager
from nova.runtimes.compiler import Compiler
from nova.runtimes.dependencies import DependencyBuilder
from nova.runtimes.registry import BUILTIN_RUNTIMES, RuntimeRegistry, RuntimeStatus
from nova.sandbox.fake import FakeBackend
from nova.sandbox.registry import BackendRegistry
from nova.store.memory import MemoryStore
from tests.unit.functions.conftest import CODE_POLICY, LIMITS
from tests.unit.observability.test_metrics import scrape, value


@dataclass
class Harness:
    store: MemoryStore
    backend: FakeBackend
    functions: FunctionService
    executor: Executor
    batcher: InvocationLogBatcher
    pools: PoolManager
    resolver: FunctionResolver


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    store = MemoryStore()
    backend = FakeBackend()
    python, node = BUILTIN_RUNTIMES[:2]
    runtimes = RuntimeRegistry(
        [
            RuntimeStatus(python, True, "/usr/bin/python3", "Python 3", "ok"),
            RuntimeStatus(node, False, None, "", "no interpreter found"),
        ]
    )
    pools = PoolManager(
        SandboxLauncher(BackendRegistry.single(backend), tmp_path / "instances", 2.0, 1 << 20),
        PoolLimits(1.0, 100, 0.5),
        idle_ttl_s=60,
        cleanup_interval_s=60,
        health_check_interval_s=60,
        counters=DaemonCounters(),
    )
    registry = BackendRegistry.single(backend)
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
    resolver = FunctionResolver(store, deployer)
    limits = LogLimits(100, 1000, 0.01, 1.0, retry_interval_s=1.0, wait_timeout_s=1.0)
    batcher = InvocationLogBatcher(store.invocations, LogSpool(tmp_path / "spool", 1 << 20), limits)
    await batcher.start()
    functions = FunctionService(store, resolver, deployer, runtimes, registry, CODE_POLICY, LIMITS)
    executor = Executor(resolver, batcher, timeout_grace_s=0.05, counters=DaemonCounters())
    yield Harness(store, backend, functions, executor, batcher, pools, resolver)
    await pools.close()
    await batcher.close()
    await store.close()


async def _create(h: Harness, name: str = "fn", **fields: object) -> None:
    await h.functions.create(
        {"name": name, "runtime": "python", **fields},
        CodeSource(code="def handler(e, c):\n    return e\n"),
    )


async def test_invoke_returns_output_and_logs_it(harness: Harness) -> None:
    await _create(harness)
    result = await harness.executor.invoke("fn", b'{"a": 1}', request_id="req-1")
    assert result.error is None
    assert result.output["event"] == {"a": 1}
    assert result.request_id == "req-1"
    assert result.cold_start
    assert not (await harness.executor.invoke("fn", b"{}")).cold_start
    await harness.batcher.close()
    logs = await harness.store.invocations.list(function_name="fn")
    assert [log.id for log in logs.items][-1] == "req-1"
    assert logs.items[-1].input_size == len(b'{"a": 1}')
    assert logs.items[-1].stdout == "out"


async def test_each_result_says_how_its_instance_started(harness: Harness) -> None:
    await _create(harness)
    cold = await harness.executor.invoke("fn", b"{}")
    warm = await harness.executor.invoke("fn", b"{}")
    assert (cold.start, warm.start) == (StartKind.COLD, StartKind.WARM)
    assert cold.phases is not None
    assert cold.phases.sandbox_ms is not None
    assert cold.phases.init_ms is not None
    assert warm.phases is None
    assert cold.to_response()["phases"]["sandbox_ms"] == cold.phases.sandbox_ms
    await _create(harness, "ready", min_replicas=1)
    for _ in range(100):  # the pre-warmed instance comes up in the background
        await asyncio.sleep(0.01)
        if harness.backend.started and len(harness.backend.started) == 2:
            break
    await asyncio.sleep(0.05)
    first, second = [await harness.executor.invoke("ready", b"{}") for _ in range(2)]
    assert (first.start, second.start) == (StartKind.PREWARMED, StartKind.WARM)
    await harness.batcher.close()
    logs = (await harness.store.invocations.list(function_name="fn")).items
    assert [log.start for log in logs] == ["warm", "cold"]
    assert logs[1].sandbox_ms == cold.phases.sandbox_ms


async def test_calls_sharing_a_request_id_each_get_their_own_reply(harness: Harness) -> None:
    """X-Nova-Request-Id is the client's: two calls in flight on one instance may share it."""
    await _create(harness, instance_concurrency=2, max_replicas=1)
    slow, fast = await asyncio.gather(
        harness.executor.invoke("fn", b'{"sleep": 0.2, "n": 1}', request_id="same"),
        harness.executor.invoke("fn", b'{"sleep": 0.05, "n": 2}', request_id="same"),
    )
    assert len(harness.backend.started) == 1
    assert (slow.error, fast.error) == (None, None)
    assert (slow.output["event"]["n"], fast.output["event"]["n"]) == (1, 2)
    assert slow.request_id == fast.request_id == "same"


async def test_timeout_kills_the_instance(harness: Harness) -> None:
    await _create(harness, timeout_s=0.1)
    result = await harness.executor.invoke("fn", b'{"sleep": 5}')
    assert result.error is not None
    assert result.error.type == "Function.Timeout"
    await asyncio.sleep(0.05)
    assert harness.backend.started[0].killed
    after = await harness.executor.invoke("fn", b"{}")
    assert after.error is None
    assert after.cold_start


async def test_crash_is_an_exit_error_and_oom_is_classified(harness: Harness) -> None:
    await _create(harness)
    crashed = await harness.executor.invoke("fn", b'{"crash": true}')
    assert crashed.error is not None
    assert crashed.error.type == "Runtime.ExitError"
    oom = await harness.executor.invoke("fn", b'{"crash": true, "oom": true}')
    assert oom.error is not None
    assert oom.error.type == "Function.OutOfMemory"
    assert (await harness.executor.invoke("fn", b"{}")).error is None


async def test_user_errors_are_results(harness: Harness) -> None:
    await _create(harness)
    result = await harness.executor.invoke("fn", b'{"fail": "ValueError"}')
    assert result.error is not None
    assert result.error.type == "ValueError"
    assert orjson.dumps(result.to_response())  # serialisable as the API returns it


async def test_unknown_function_and_shutdown(harness: Harness) -> None:
    with pytest.raises(FunctionNotFound):
        await harness.executor.invoke("missing", b"{}")
    await harness.executor.inflight.drain(0.1)
    with pytest.raises(ShuttingDown):
        await harness.executor.invoke("fn", b"{}")


async def test_drain_waits_for_running_invocations(harness: Harness) -> None:
    await _create(harness)
    running = asyncio.create_task(harness.executor.invoke("fn", b'{"sleep": 0.2}'))
    await asyncio.sleep(0.05)
    assert await harness.executor.inflight.drain(2.0)
    assert running.done()
    assert (await running).error is None


async def test_delete_lets_running_invocations_finish_and_refuses_new_ones(
    harness: Harness,
) -> None:
    await _create(harness, max_replicas=2)
    await asyncio.gather(*(harness.executor.invoke("fn", b'{"sleep": 0.05}') for _ in range(2)))
    busy, idle = harness.backend.started  # two warm instances
    running = asyncio.create_task(harness.executor.invoke("fn", b'{"sleep": 0.3, "n": 1}'))
    await asyncio.sleep(0.05)
    await harness.functions.delete("fn")
    with pytest.raises(FunctionNotFound):
        await harness.executor.invoke("fn", b"{}")
    await asyncio.sleep(0.05)
    stopped_at_once = [instance.killed for instance in (busy, idle)]
    result = await running
    assert result.error is None
    assert result.output["event"]["n"] == 1
    assert sorted(stopped_at_once) == [False, True]  # the idle one went, the busy one finished
    await asyncio.sleep(0.05)
    assert busy.killed
    assert idle.killed


async def test_update_code_is_served_by_the_reloaded_instance(harness: Harness) -> None:
    await _create(harness)
    first = await harness.executor.invoke("fn", b"{}")
    record = await harness.functions.update(
        "fn", {}, CodeSource(code="def handler(e, c):\n    return 2\n")
    )
    await asyncio.sleep(0.05)
    second = await harness.executor.invoke("fn", b"{}")
    assert second.output["code_hash"] == record.code_hash != first.output["code_hash"]
    assert len(harness.backend.started) == 1


async def test_service_validation(harness: Harness) -> None:
    with pytest.raises(RequestInvalid, match="name"):
        await harness.functions.create(
            {"name": "../etc", "runtime": "python"}, CodeSource(code="x")
        )
    with pytest.raises(RequestInvalid, match="runtime"):
        await harness.functions.create({"name": "a", "runtime": "cobol"}, CodeSource(code="x"))
    with pytest.raises(RuntimeUnavailable, match="no interpreter"):
        await harness.functions.create({"name": "a", "runtime": "node"}, CodeSource(code="x"))
    with pytest.raises(RequestInvalid, match="exactly one"):
        await harness.functions.create(
            {"name": "a", "runtime": "python"}, CodeSource(code="x", files={"a.py": ""})
        )
    with pytest.raises(RequestInvalid, match=r"handler.*main\.py"):
        await harness.functions.create(
            {"name": "a", "runtime": "python", "handler": "main.handler"},
            CodeSource(files={"other.py": ""}),
        )
    with pytest.raises(RequestInvalid, match="min_replicas"):
        await harness.functions.create(
            {"name": "a", "runtime": "python", "min_replicas": 3, "max_replicas": 1},
            CodeSource(code="x"),
        )
    with pytest.raises(RequestInvalid, match="reserved"):
        await harness.functions.create(
            {"name": "a", "runtime": "python", "env": {"NOVA_MODE": "x"}}, CodeSource(code="x")
        )
    with pytest.raises(RequestInvalid, match="safe relative path"):
        await harness.functions.create(
            {"name": "a", "runtime": "python"}, CodeSource(files={"../handler.py": ""})
        )
    assert (await harness.store.functions.list()).items == []  # nothing half-created


CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"


def _traced(
    harness: Harness, sampling_ratio: float
) -> tuple[Executor, InvocationTracer, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracer = InvocationTracer(tracer_provider(exporter, sampling_ratio, "nova"), sampling_ratio)
    executor = Executor(harness.resolver, harness.batcher, 0.05, DaemonCounters(), tracer=tracer)
    return executor, tracer, exporter


async def test_spans_continue_the_callers_trace_into_the_function(harness: Harness) -> None:
    executor, tracer, exporter = _traced(harness, sampling_ratio=0.0)  # the caller sampled
    await _create(harness)
    caller = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
    cold = await executor.invoke("fn", b"{}", trace_parent=caller, trace_state="vendor=1")
    warm = await executor.invoke("fn", b"{}", trace_parent=caller)
    tracer.shutdown()
    spans = exporter.get_finished_spans()
    roots = [span for span in spans if span.name == "invoke fn"]
    assert len(roots) == 2
    for root in roots:
        assert root.parent is not None
        assert (f"{root.parent.trace_id:032x}", f"{root.parent.span_id:016x}") == (
            CALLER_TRACE,
            CALLER_SPAN,
        )
        assert f"{root.context.trace_id:032x}" == CALLER_TRACE
    assert str(roots[0].context.trace_state) == str(roots[0].parent.trace_state)
    assert roots[0].attributes is not None
    assert roots[0].attributes["nova.start"] == "cold"

    def children(parent: ReadableSpan) -> list[str]:
        return sorted(
            span.name
            for span in spans
            if span.parent is not None and span.parent.span_id == parent.context.span_id
        )

    cold_root, warm_root = roots
    assert children(cold_root) == ["acquire", "execute"]
    assert children(warm_root) == ["acquire", "execute"]
    acquire = next(
        s for s in spans if s.name == "acquire" and s.parent.span_id == cold_root.context.span_id
    )  # type: ignore[union-attr]
    assert children(acquire) == ["queue"]
    queue = next(s for s in spans if s.name == "queue")
    assert children(queue) == ["init", "runtime", "sandbox"]
    assert cold.phases is not None
    assert warm.phases is None

    # The function saw its execute span as its parent, in the caller's trace.
    execute_ids = [
        f"{s.context.span_id:016x}"
        for s in sorted(spans, key=lambda s: s.start_time or 0)
        if s.name == "execute"
    ]
    seen = harness.backend.live[0].trace_parents
    assert seen == [f"00-{CALLER_TRACE}-{span_id}-01" for span_id in execute_ids]


async def test_sampling_zero_makes_no_spans_and_passes_the_caller_on(harness: Harness) -> None:
    executor, tracer, exporter = _traced(harness, sampling_ratio=0.0)
    await _create(harness)
    unsampled = f"00-{CALLER_TRACE}-{CALLER_SPAN}-00"
    await executor.invoke("fn", b"{}")
    await executor.invoke("fn", b"{}", trace_parent=unsampled)
    tracer.shutdown()
    assert exporter.get_finished_spans() == ()
    assert harness.backend.live[0].trace_parents == [None, unsampled]


async def test_a_call_that_cannot_run_ends_its_span_with_the_error(harness: Harness) -> None:
    executor, tracer, exporter = _traced(harness, sampling_ratio=1.0)
    with pytest.raises(FunctionNotFound):
        await executor.invoke("missing", b"{}")
    tracer.shutdown()
    (root,) = exporter.get_finished_spans()
    assert root.name == "invoke missing"
    assert root.parent is None  # no caller: a trace of its own
    assert root.status.status_code is StatusCode.ERROR
    assert root.attributes is not None
    assert root.attributes["error.type"] == FunctionNotFound.code


async def test_the_callers_sampling_decision_wins_over_the_ratio(harness: Harness) -> None:
    executor, tracer, exporter = _traced(harness, sampling_ratio=1.0)
    await _create(harness)
    # The caller did not sample its span: neither does Nova.
    await executor.invoke("fn", b"{}", trace_parent=f"00-{CALLER_TRACE}-{CALLER_SPAN}-00")
    await executor.invoke("fn", b"{}", trace_parent="not-a-traceparent")
    tracer.shutdown()
    # Only the second: an unreadable traceparent starts a trace of Nova's own.
    (root,) = [s for s in exporter.get_finished_spans() if s.name == "invoke fn"]
    assert root.parent is None
    assert f"{root.context.trace_id:032x}" != CALLER_TRACE


async def test_an_environment_runs_no_more_than_its_concurrency_quota(harness: Harness) -> None:
    prod = Environment("acme", "shop", "prod")

    async def quotas(environment: Environment) -> Quotas:
        return Quotas(max_concurrency=1) if environment == prod else Quotas()

    counts = EnvironmentConcurrency(quotas)
    metrics = InvocationMetrics([1.0], [1.0], 5)
    executor = Executor(
        harness.resolver, harness.batcher, 0.05, DaemonCounters(), metrics, None, counts
    )
    for name in ("acme.shop.prod.a", "acme.shop.prod.b", "fn"):
        await _create(harness, name)
    running = asyncio.create_task(executor.invoke("acme.shop.prod.a", b'{"sleep": 0.2}'))
    await asyncio.sleep(0.05)
    with pytest.raises(ConcurrencyQuotaExceeded, match="acme/shop/prod is running 1"):
        await executor.invoke("acme.shop.prod.b", b"{}")
    throttles = {"function": "acme.shop.prod.b", "reason": "environment"}
    assert value(scrape(metrics), "nova_throttles_total", **throttles) == 1
    assert (await executor.invoke("fn", b"{}")).error is None  # another environment
    assert (await running).error is None
    assert counts.running(prod) == 0
    # A failed invocation and a cancelled one give their place back.
    assert (await executor.invoke("acme.shop.prod.b", b'{"crash": true}')).error is not None
    cancelled = asyncio.create_task(executor.invoke("acme.shop.prod.a", b'{"sleep": 5}'))
    await asyncio.sleep(0.05)
    assert counts.running(prod) == 1
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert counts.running(prod) == 0
    assert (await executor.invoke("acme.shop.prod.b", b"{}")).error is None
