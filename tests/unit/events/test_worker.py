"""The async worker on the in-memory queue with a scripted invoker: success, retry by kind,
dead letters with destinations, events of missing functions, shutdown, expiry, caps."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from nova.core.counters import DaemonCounters
from nova.core.errors import FunctionNotFound, NovaError, ShuttingDown, TooManyRequests
from nova.core.events import EventStatus, NewEvent
from nova.core.models import FunctionConfig, InvocationError
from nova.events.invocations import AsyncInvocations
from nova.events.worker import AsyncWorker, WorkerLimits
from nova.executor.result import InvocationResult
from nova.store.memory_events import MemoryEventQueue

FAST = {"handler_error": {"attempts": 3, "backoff_s": 0.01, "max_backoff_s": 0.02}}


class ScriptedInvoker:
    """Answers each call with the next outcome of its event's script (the last one repeats)."""

    def __init__(self, script: list[Callable[[], InvocationResult]]) -> None:
        self.script = script
        self.calls: list[str] = []
        self.running = 0
        self.most_running = 0

    async def invoke(self, name: str, event: bytes, **kwargs: object) -> InvocationResult:
        self.calls.append(name)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await asyncio.sleep(0.01)
            outcome = self.script[min(len(self.calls), len(self.script)) - 1]
            return outcome()
        finally:
            self.running -= 1


def ok() -> InvocationResult:
    return InvocationResult(
        "r", {"done": True}, None, 1.0, False, "$LATEST", output_json=b'{"done":true}'
    )


def fails(kind: str = "ValueError") -> Callable[[], InvocationResult]:
    return lambda: InvocationResult("r", None, InvocationError(kind, "no"), 1.0, False, "$LATEST")


def raises(error: NovaError) -> Callable[[], InvocationResult]:
    def outcome() -> InvocationResult:
        raise error

    return outcome


class Setup:
    def __init__(self, invoker: ScriptedInvoker, configs: dict[str, FunctionConfig]) -> None:
        self.queue = MemoryEventQueue()
        self.counters = DaemonCounters()

        async def check(name: str, qualifier: str | None) -> object:
            if name not in configs:
                raise FunctionNotFound(name)
            return None

        async def config_of(name: str, qualifier: str | None) -> FunctionConfig:
            if name not in configs:
                raise FunctionNotFound(name)
            return configs[name]

        self.invocations = AsyncInvocations(self.queue, check, 1024, self.counters, poll_s=0.05)
        self.worker = AsyncWorker(
            self.queue,
            invoker,
            config_of,
            self.invocations.signals,
            WorkerLimits(concurrency=8, lease_s=5, poll_s=0.05, retention_s=0),
            self.counters,
            rng=random.Random(1),
        )


def _config(name: str, **fields: object) -> FunctionConfig:
    return FunctionConfig(name=name, runtime="python", handler="h.h", **fields)  # type: ignore[arg-type]


async def _run(setup: Setup, request_id: str) -> EventStatus:
    setup.worker.start()
    try:
        event = await setup.invocations.wait(request_id, 10)
    finally:
        await setup.worker.close(5)
    return event.status


async def test_success_stores_the_response() -> None:
    setup = Setup(ScriptedInvoker([ok]), {"f": _config("f")})
    request_id = await setup.invocations.submit("f", None, b"{}")
    assert await _run(setup, request_id) is EventStatus.SUCCEEDED
    event = await setup.queue.get(request_id)
    assert b'"done":true' in (event.result or b"")
    assert setup.counters.async_accepted == setup.counters.async_succeeded == 1


async def test_retry_then_success_then_dead_with_destination() -> None:
    invoker = ScriptedInvoker([fails(), fails(), ok])
    configs = {
        "f": _config("f", async_retry=FAST),
        "g": _config("g", async_retry=FAST, on_failure="function:sink"),
        "sink": _config("sink"),
    }
    setup = Setup(invoker, configs)
    request_id = await setup.invocations.submit("f", None, b"{}")
    assert await _run(setup, request_id) is EventStatus.SUCCEEDED
    assert (await setup.queue.get(request_id)).attempts == 3
    assert setup.counters.async_retries == 2

    dead = Setup(ScriptedInvoker([fails()]), configs)
    dead_id = await dead.invocations.submit("g", None, b'{"x": 1}')
    assert await _run(dead, dead_id) is EventStatus.DEAD
    event = await dead.queue.get(dead_id)
    assert [error.attempt for error in event.errors] == [1, 2, 3]
    follow_ups = [e for e in dead.queue._events.values() if e.function == "sink"]
    assert len(follow_ups) == 1
    assert b'"condition":"RetriesExhausted"' in follow_ups[0].payload
    assert b'"requestPayload":{"x": 1}' in follow_ups[0].payload


async def test_throttling_retries_by_its_own_rule() -> None:
    throttled = {"throttled": {"attempts": 2, "backoff_s": 0.01}}
    setup = Setup(
        ScriptedInvoker([raises(TooManyRequests("busy"))]),
        {"f": _config("f", async_retry=throttled)},
    )
    request_id = await setup.invocations.submit("f", None, b"{}")
    assert await _run(setup, request_id) is EventStatus.DEAD
    errors = (await setup.queue.get(request_id)).errors
    assert [e.type for e in errors] == ["Function.TooManyRequests"] * 2


async def test_a_deleted_function_dead_letters_at_once() -> None:
    invoker = ScriptedInvoker([ok])
    setup = Setup(invoker, {"f": _config("f")})
    await setup.queue.submit(NewEvent("e", "gone", "", b"{}"))
    assert await _run(setup, "e") is EventStatus.DEAD
    assert (await setup.queue.get("e")).errors[0].type == "Function.NotFound"
    assert invoker.calls == []


async def test_shutting_down_gives_the_event_back_untried() -> None:
    setup = Setup(ScriptedInvoker([raises(ShuttingDown())]), {"f": _config("f")})
    request_id = await setup.invocations.submit("f", None, b"{}")
    setup.worker.start()
    await asyncio.sleep(0.3)
    await setup.worker.close(5)
    event = await setup.queue.get(request_id)
    assert event.status is EventStatus.PENDING
    assert event.attempts == 0


async def test_an_event_past_its_max_age_is_not_run() -> None:
    invoker = ScriptedInvoker([ok])
    setup = Setup(invoker, {"f": _config("f", async_max_age_s=60)})
    await setup.queue.submit(NewEvent("old", "f", "", b"{}"))
    stored = setup.queue._events["old"]
    setup.queue._events["old"] = dataclasses.replace(
        stored, created_at=datetime.now(UTC) - timedelta(minutes=2)
    )
    assert await _run(setup, "old") is EventStatus.DEAD
    assert (await setup.queue.get("old")).errors[0].type == "Event.Expired"
    assert invoker.calls == []


async def test_a_function_runs_no_more_events_at_once_than_its_instances_can() -> None:
    invoker = ScriptedInvoker([ok])
    setup = Setup(invoker, {"f": _config("f", max_replicas=2)})
    ids = [await setup.invocations.submit("f", None, b"{}") for _ in range(30)]
    setup.worker.start()
    try:
        for request_id in ids:
            assert (await setup.invocations.wait(request_id, 10)).status is EventStatus.SUCCEEDED
    finally:
        await setup.worker.close(5)
    assert invoker.most_running == 2


async def test_submit_refuses_what_it_cannot_accept() -> None:
    setup = Setup(ScriptedInvoker([ok]), {"f": _config("f")})
    with pytest.raises(NovaError, match="over the 1024-byte limit"):
        await setup.invocations.submit("f", None, b"0" * 2000)
    with pytest.raises(FunctionNotFound):
        await setup.invocations.submit("nope", None, b"{}")
    with pytest.raises(NovaError, match="Idempotency-Key"):
        await setup.invocations.submit("f", None, b"{}", idempotency_key="")
    first = await setup.invocations.submit("f", None, b"{}", idempotency_key="k")
    assert await setup.invocations.submit("f", None, b"{}", idempotency_key="k") == first
    assert setup.counters.async_accepted == 1


async def test_reject_stores_an_unusable_message_as_a_dead_letter() -> None:
    setup = Setup(ScriptedInvoker([ok]), {"f": _config("f")})
    request_id = await setup.invocations.reject(
        "f", None, b"\xffnot json", "Event.InvalidJson", "the message is not JSON", source="queue:q"
    )
    event = await setup.queue.get(request_id)
    assert event.status is EventStatus.DEAD
    assert event.payload == '"\ufffdnot json"'.encode()
    assert event.errors[0].message == "the message is not JSON"
    assert setup.counters.async_dead_lettered == 1
