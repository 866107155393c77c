"""Periodic: a failing step is logged and the loop goes on; close stops it between rounds."""

from __future__ import annotations

import asyncio
import logging

import pytest

from nova.core.errors import StoreUnavailable
from nova.core.periodic import Periodic


async def test_a_failed_step_is_logged_and_the_next_one_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0
    third = asyncio.Event()

    async def step() -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            third.set()
        if calls == 1:
            raise StoreUnavailable("the store is away")

    loop = Periodic("test-loop", 0.01, step, logging.getLogger("test"), "a round failed")
    with caplog.at_level(logging.WARNING, logger="test"):
        loop.start()
        await asyncio.wait_for(third.wait(), 5)
        await loop.close()
    assert "a round failed: the store is away" in caplog.text
    stopped_at = calls
    await asyncio.sleep(0.05)
    assert calls == stopped_at  # closed: no more rounds


async def test_close_lets_the_round_in_progress_finish() -> None:
    began, finished = asyncio.Event(), asyncio.Event()

    async def step() -> None:
        began.set()
        await asyncio.sleep(0.2)  # a store write in flight: cutting it could leave a lock held
        finished.set()

    loop = Periodic("test-loop", 0.01, step, logging.getLogger("test"), "a round failed")
    loop.start()
    await asyncio.wait_for(began.wait(), 5)
    await loop.close()
    assert finished.is_set()


async def test_a_round_that_outlasts_the_grace_is_cancelled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    began = asyncio.Event()

    async def step() -> None:
        began.set()
        await asyncio.sleep(3600)

    loop = Periodic("test-loop", 0.01, step, logging.getLogger("test"), "a round failed")
    loop.start()
    await asyncio.wait_for(began.wait(), 5)
    with caplog.at_level(logging.WARNING, logger="test"):
        await asyncio.wait_for(loop.close(grace_s=0.1), 5)
    assert "a round still running after 0.1s is cancelled" in caplog.text
