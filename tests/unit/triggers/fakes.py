"""A scripted broker and invoker for the consumer's unit tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from nova.core.counters import DaemonCounters
from nova.core.errors import FunctionNotFound
from nova.core.models import FunctionConfig, InvocationError
from nova.core.queue_triggers import QueueTrigger, TriggerSource
from nova.events.invocations import AsyncInvocations
from nova.executor.result import InvocationResult
from nova.store.memory_events import MemoryEventQueue
from nova.triggers.broker import BrokerUnavailable, Message
from nova.triggers.consumer import ConsumerTiming, TriggerConsumer

TIMING = ConsumerTiming(
    ack_wait_s=300, reconnect_initial_s=0.5, reconnect_max_s=2.0, lag_interval_s=60
)


class FakeBroker:
    """Hands out what tests ``put``; ``connect_failures`` connects fail first; ``lose()``
    makes the next fetch fail as a dropped connection does."""

    def __init__(self, connect_failures: int = 0) -> None:
        self.connect_failures = connect_failures
        self.connects = 0
        self.closes = 0
        self.acked: list[str] = []
        self.naked: list[str] = []
        self.kept_alive: list[str] = []
        self.ack_fails = False
        self.closed = False
        self._queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self._lost = False

    def put(self, message_id: str, body: bytes) -> None:
        self._queue.put_nowait((message_id, body))

    def lose(self) -> None:
        self._lost = True

    async def connect(self) -> None:
        self.closed = False
        self.connects += 1
        if self.connects <= self.connect_failures:
            raise BrokerUnavailable(f"refused #{self.connects}")

    async def fetch(self, limit: int, timeout_s: float) -> list[Message]:
        if self._lost:
            self._lost = False
            raise BrokerUnavailable("connection reset")
        try:
            first = await asyncio.wait_for(self._queue.get(), min(timeout_s, 0.05))
        except TimeoutError:
            return []
        batch = [first]
        while len(batch) < limit and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        return [self._message(message_id, body) for message_id, body in batch]

    async def lag(self) -> int | None:
        return self._queue.qsize()

    async def close(self) -> None:
        self.closed = True
        self.closes += 1

    def _message(self, message_id: str, body: bytes) -> Message:
        async def ack() -> None:
            if self.ack_fails or self.closed:
                raise BrokerUnavailable("gone")
            self.acked.append(message_id)

        async def nak() -> None:
            self.naked.append(message_id)

        async def keepalive() -> None:
            self.kept_alive.append(message_id)

        return Message(message_id, body, {"subject": "s"}, ack, nak, keepalive)


class ScriptedInvoker:
    """Answers call n with ``script[n]`` (the last one repeats): a result or an exception."""

    def __init__(self, script: list[Callable[[], InvocationResult]]) -> None:
        self.script = script
        self.calls: list[bytes] = []
        self.qualifiers: list[object] = []
        self.release: asyncio.Event | None = None  # when set, calls wait for it

    async def invoke(self, name: str, event: bytes, **kwargs: object) -> InvocationResult:
        self.calls.append(event)
        self.qualifiers.append(kwargs.get("qualifier"))
        if self.release is not None:
            await self.release.wait()
        return self.script[min(len(self.calls), len(self.script)) - 1]()


def ok() -> InvocationResult:
    return InvocationResult("r", "done", None, 1.0, False, "$LATEST")


def fails(kind: str = "ValueError") -> Callable[[], InvocationResult]:
    return lambda: InvocationResult("r", None, InvocationError(kind, "no"), 1.0, False, "$LATEST")


def trigger(**fields: object) -> QueueTrigger:
    values: dict[str, object] = {
        "name": "t",
        "function": "fn",
        "qualifier": "",
        "source": TriggerSource.NATS,
        "target": "subject",
        "url": "",
        "batch_size": 10,
        "concurrency": 2,
        "enabled": True,
        "created_at": datetime.now(UTC),
        "updated_at": datetime.now(UTC),
        **fields,
    }
    return QueueTrigger(**values)  # type: ignore[arg-type]


class Rig:
    """A consumer over a FakeBroker, a scripted invoker and an in-memory event queue; its
    sleeps are recorded and return at once."""

    def __init__(
        self,
        script: list[Callable[[], InvocationResult]],
        broker: FakeBroker | None = None,
        async_retry: dict[str, dict[str, float]] | None = None,
        max_payload_bytes: int = 1024,
        functions: tuple[str, ...] = ("fn",),
        timing: ConsumerTiming = TIMING,
        **trigger_fields: object,
    ) -> None:
        self.broker = broker or FakeBroker()
        self.invoker = ScriptedInvoker(script)
        self.queue = MemoryEventQueue()
        self.counters = DaemonCounters()
        self.sleeps: list[float] = []
        retry = async_retry or {"handler_error": {"attempts": 3, "backoff_s": 1.0}}

        async def check(name: str, qualifier: str | None) -> None:
            return None

        async def config_of(name: str, qualifier: str | None) -> FunctionConfig:
            if name not in functions:
                raise FunctionNotFound(name)
            return FunctionConfig(
                name=name,
                runtime="python",
                handler="h.h",
                async_retry=retry,  # type: ignore[arg-type]
            )

        async def sleep(seconds: float) -> None:
            self.sleeps.append(seconds)
            await asyncio.sleep(0)

        self.invocations = AsyncInvocations(self.queue, check, max_payload_bytes, self.counters)
        self.consumer = TriggerConsumer(
            trigger(**trigger_fields),
            self.broker,
            self.invoker,
            config_of,
            self.invocations,
            max_payload_bytes,
            timing,
            sleep=sleep,
        )

    async def until(self, condition: Callable[[], bool], timeout_s: float = 5) -> None:
        async with asyncio.timeout(timeout_s):
            while not condition():  # noqa: ASYNC110 - the consumer signals nothing to wait on
                await asyncio.sleep(0.005)
