"""KeyedLock: one holder per key, others keys untouched, nothing kept once released."""

from __future__ import annotations

import asyncio

from nova.functions.locks import KeyedLock


async def test_holders_of_one_key_take_turns_and_other_keys_do_not_wait() -> None:
    locks = KeyedLock()
    events: list[str] = []
    first_in = asyncio.Event()
    release = asyncio.Event()

    async def first() -> None:
        async with locks.hold("a"):
            events.append("first in")
            first_in.set()
            await release.wait()
            events.append("first out")

    async def second() -> None:
        async with locks.hold("a"):
            events.append("second in")

    async def other() -> None:
        async with locks.hold("b"):
            events.append("other key in")

    holder = asyncio.create_task(first())
    await first_in.wait()
    waiter = asyncio.create_task(second())
    await other()
    release.set()
    await asyncio.gather(holder, waiter)
    assert events == ["first in", "other key in", "first out", "second in"]
    assert len(locks) == 0


async def test_a_failing_holder_releases_its_key() -> None:
    locks = KeyedLock()
    try:
        async with locks.hold("a"):
            raise ValueError("boom")
    except ValueError:
        pass
    assert len(locks) == 0
    async with locks.hold("a"):
        assert len(locks) == 1
