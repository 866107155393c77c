"""The trigger consumer over a scripted broker: acknowledgement only after success or the dead
letters, retries by the function's policy with backoff, every attempt's error in the dead
letter, hand-back on shutdown, oversized and orphaned messages, reconnects with backoff and
jitter, keepalives, and the event a non-JSON body becomes."""

from __future__ import annotations

import asyncio
import dataclasses

from nova.core.errors import ShuttingDown, StoreUnavailable
from nova.core.events import EventStatus
from nova.executor.result import InvocationResult
from nova.triggers.broker import Message, is_json
from nova.triggers.consumer import ConsumerState
from tests.unit.triggers.fakes import TIMING, FakeBroker, Rig, fails, ok


async def _run(rig: Rig, *messages: tuple[str, bytes], acked: int) -> None:
    rig.consumer.start()
    for message_id, body in messages:
        rig.broker.put(message_id, body)
    try:
        await rig.until(lambda: rig.consumer.stats.acked + len(rig.broker.naked) >= acked)
    finally:
        await rig.consumer.close()


async def test_success_is_acked_once_with_the_body_as_the_event() -> None:
    rig = Rig([ok])
    await _run(rig, ("m1", b'{"k": 1}'), acked=1)
    assert rig.broker.acked == ["m1"]
    assert rig.invoker.calls == [b'{"k": 1}']
    assert (rig.consumer.stats.received, rig.consumer.stats.failed) == (1, 0)


async def test_the_triggers_qualifier_is_invoked() -> None:
    rig = Rig([ok], qualifier="prod")
    await _run(rig, ("m1", b"{}"), acked=1)
    assert rig.invoker.qualifiers == ["prod"]


async def test_a_failure_is_retried_after_the_rules_backoff_then_acked() -> None:
    rig = Rig([fails(), fails(), ok])
    await _run(rig, ("m1", b"{}"), acked=1)
    assert rig.broker.acked == ["m1"]
    assert len(rig.invoker.calls) == 3
    assert rig.consumer.stats.failed == 2
    # backoff_s 1: attempt n waits min(max, 1 * 2^(n-1)), a random half of it taken off.
    assert 0.5 <= rig.sleeps[0] <= 1.0
    assert 1.0 <= rig.sleeps[1] <= 2.0
    assert (await rig.invocations.stats()).dead == 0


async def test_exhaustion_dead_letters_every_attempt_then_acks() -> None:
    rig = Rig([fails("ValueError")])
    acked_after_dead: list[bool] = []
    original = rig.broker._message

    def message(message_id: str, body: bytes) -> Message:
        inner = original(message_id, body)

        async def ack() -> None:
            # The dead letter must be stored before the broker hears the ack.
            acked_after_dead.append((await rig.invocations.stats()).dead == 1)
            await inner.ack()

        return Message(inner.id, inner.body, inner.metadata, ack, inner.nak, inner.keepalive)

    rig.broker._message = message  # type: ignore[method-assign]
    await _run(rig, ("m1", b'{"n": 1}'), acked=1)
    assert acked_after_dead == [True]
    [dead] = (await rig.invocations.dead_letters()).items
    assert dead.status is EventStatus.DEAD
    assert dead.source == "trigger:t"
    assert dead.payload == b'{"n": 1}'
    assert [(e.attempt, e.type) for e in dead.errors] == [(n, "ValueError") for n in (1, 2, 3)]
    assert dead.attempts == 3
    assert rig.consumer.stats.dead_lettered == 1
    assert rig.counters.async_dead_lettered == 1


async def test_the_function_policy_decides_the_attempts_per_error_kind() -> None:
    rig = Rig([fails("Function.Timeout")], async_retry={"timeout": {"attempts": 1}})
    await _run(rig, ("m1", b"{}"), acked=1)
    assert len(rig.invoker.calls) == 1
    assert rig.sleeps == []


async def test_a_redelivered_dead_message_is_stored_once() -> None:
    rig = Rig([fails()], async_retry={"handler_error": {"attempts": 1}})
    await _run(rig, ("m1", b"{}"), ("m1", b"{}"), acked=2)
    assert len((await rig.invocations.dead_letters()).items) == 1


async def test_handed_back_when_the_dead_letter_cannot_be_stored() -> None:
    rig = Rig([fails()], async_retry={"handler_error": {"attempts": 1}})

    async def store_away(*args: object, **kwargs: object) -> tuple[str, bool]:
        raise StoreUnavailable("down")

    rig.queue.submit = store_away  # type: ignore[method-assign]
    rig.consumer.start()
    rig.broker.put("m1", b"{}")
    await rig.until(lambda: rig.broker.naked == ["m1"])
    await rig.consumer.close()
    assert rig.broker.acked == []


async def test_shutting_down_hands_the_message_back() -> None:
    def stopping() -> InvocationResult:
        raise ShuttingDown()

    rig = Rig([stopping])
    await _run(rig, ("m1", b"{}"), acked=1)
    assert (rig.broker.acked, rig.broker.naked) == ([], ["m1"])


async def test_oversized_and_orphaned_messages_go_to_the_dead_letters_without_retries() -> None:
    rig = Rig([ok], max_payload_bytes=16)
    await _run(rig, ("big", b'{"pad": "' + b"x" * 32 + b'"}'), acked=1)
    assert rig.invoker.calls == []
    [dead] = (await rig.invocations.dead_letters()).items
    assert dead.errors[0].type == "Event.TooLarge"

    orphan = Rig([ok], functions=())
    await _run(orphan, ("m1", b"{}"), acked=1)
    [dead] = (await orphan.invocations.dead_letters()).items
    assert [e.type for e in dead.errors] == ["Function.NotFound"]
    assert orphan.sleeps == []


async def test_messages_held_are_kept_alive_every_third_of_the_ack_wait() -> None:
    timing = dataclasses.replace(TIMING, ack_wait_s=0.03)
    rig = Rig([ok], timing=timing)
    rig.invoker.release = asyncio.Event()
    rig.consumer.start()
    rig.broker.put("m1", b"{}")
    await rig.until(lambda: rig.broker.kept_alive.count("m1") >= 2)
    rig.invoker.release.set()
    await rig.until(lambda: rig.broker.acked == ["m1"])
    await rig.consumer.close()


async def test_concurrency_bounds_the_messages_held() -> None:
    rig = Rig([ok], concurrency=2)
    rig.invoker.release = asyncio.Event()
    for n in range(5):
        rig.broker.put(f"m{n}", b"{}")  # one fetch gets them all: the slots hold them back
    rig.consumer.start()
    await rig.until(lambda: len(rig.invoker.calls) == 2)
    await asyncio.sleep(0.1)
    assert len(rig.invoker.calls) == 2  # the others wait in the broker
    rig.invoker.release.set()
    await rig.until(lambda: len(rig.broker.acked) == 5)
    await rig.consumer.close()


async def test_close_lets_running_messages_finish_and_acks_them() -> None:
    rig = Rig([ok])
    rig.invoker.release = asyncio.Event()
    rig.consumer.start()
    rig.broker.put("m1", b"{}")
    await rig.until(lambda: len(rig.invoker.calls) == 1)
    closing = asyncio.create_task(rig.consumer.close())
    await asyncio.sleep(0.05)
    rig.invoker.release.set()
    await closing
    assert rig.broker.acked == ["m1"]  # acknowledged before the disconnect
    assert rig.broker.closed


async def test_a_draining_daemon_stops_fetching() -> None:
    def stopping() -> InvocationResult:
        raise ShuttingDown()

    rig = Rig([stopping])
    rig.consumer.start()
    rig.broker.put("m1", b"{}")
    await rig.until(lambda: rig.broker.naked == ["m1"])
    task = rig.consumer._task
    await rig.until(lambda: task is not None and task.done())  # no more fetches
    rig.broker.put("m2", b"{}")
    await asyncio.sleep(0.1)
    assert len(rig.invoker.calls) == 1  # m2 stays in the broker for another daemon
    assert not rig.broker.closed  # close() disconnects, once the running messages are done
    await rig.consumer.close()


async def test_a_lost_ack_leaves_the_message_to_the_broker() -> None:
    rig = Rig([ok])
    rig.broker.ack_fails = True
    rig.consumer.start()
    rig.broker.put("m1", b"{}")
    await rig.until(lambda: len(rig.invoker.calls) == 1)
    await rig.consumer.close()
    assert rig.consumer.stats.acked == 0


async def test_reconnects_with_growing_jittered_backoff_and_reports_its_state() -> None:
    rig = Rig([ok], broker=FakeBroker(connect_failures=3))
    rig.consumer.start()
    await rig.until(lambda: rig.consumer.state is ConsumerState.CONNECTED)
    # 0.5 doubling to the 2.0 cap, each with a random half taken off.
    assert [round(high, 2) for high in _highs(rig.sleeps)] == [0.5, 1.0, 2.0]
    assert rig.consumer.last_error is None
    assert rig.consumer.stats.reconnects == 0  # never connected before: not a reconnect

    rig.broker.lose()
    await rig.until(lambda: rig.consumer.stats.reconnects == 1)
    await rig.until(lambda: rig.consumer.state is ConsumerState.CONNECTED)
    assert rig.sleeps[-1] <= 0.5  # a successful connect reset the backoff
    rig.broker.put("m1", b"{}")
    await rig.until(lambda: rig.broker.acked == ["m1"])
    await rig.consumer.close()
    assert rig.consumer.state is ConsumerState.STOPPED


async def test_state_shows_the_last_error_while_reconnecting() -> None:
    rig = Rig([ok], broker=FakeBroker(connect_failures=1000))
    rig.consumer.start()
    await rig.until(lambda: rig.broker.connects >= 2)
    assert rig.consumer.state is ConsumerState.RECONNECTING
    assert rig.consumer.last_error is not None
    assert rig.consumer.last_error.startswith("refused #")
    await rig.consumer.close()


async def test_close_does_not_wait_out_a_reconnect_backoff() -> None:
    timing = dataclasses.replace(TIMING, reconnect_initial_s=3600, reconnect_max_s=3600)
    rig = Rig([ok], broker=FakeBroker(connect_failures=1), timing=timing)
    rig.consumer._sleep = asyncio.sleep  # a real hour-long backoff
    rig.consumer.start()
    await rig.until(lambda: rig.consumer.state is ConsumerState.RECONNECTING)
    async with asyncio.timeout(30):  # not a speed check: without the cancel it takes an hour
        await rig.consumer.close()
    assert rig.consumer.state is ConsumerState.STOPPED


def _highs(sleeps: list[float]) -> list[float]:
    """The backoff each sleep was drawn from: between half of it and all of it."""
    highs = []
    for sleep in sleeps:
        high = next(h for h in (0.5, 1.0, 2.0) if h / 2 <= sleep <= h)
        highs.append(high)
    return highs


def test_only_json_bodies_are_events() -> None:
    assert is_json(b'{"a":  [1, 2]}')
    assert is_json(b'"text"')
    assert not is_json(b"\xff\x00 not json")
    assert not is_json(b"")
