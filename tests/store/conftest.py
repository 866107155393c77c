"""Fixtures: ``store`` runs a test on every backend, ``sql_target`` on the SQL ones only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nova.store import Store

from .backends import MEMORY, POSTGRES, SQLITE, Target, open_target


@pytest.fixture(params=[SQLITE, POSTGRES, MEMORY])
async def target(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Target]:
    async with open_target(request.param, tmp_path) as value:
        yield value


@pytest.fixture(params=[SQLITE, POSTGRES])
async def sql_target(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Target]:
    async with open_target(request.param, tmp_path) as value:
        yield value


@pytest.fixture
async def store(target: Target) -> AsyncIterator[Store]:
    opened = await target.open()
    try:
        yield opened
    finally:
        await opened.close()
