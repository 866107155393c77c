"""Periodic: a failing step is logged and the loop goes on; close stops it."""

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
