"""Two daemons on one store: a change made through one is served by the other.

Each daemon follows the store's change log (polling on SQLite, LISTEN/NOTIFY plus polling on
PostgreSQL). How fast the second daemon catches up is measured by bench/follow.py, not here:
these tests check that it does, for every kind of change, on both stores.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.daemon_process import DaemonProcess

CODE = "def handler(event, context):\n    return {}\n"


def _code(answer: str) -> str:
    return CODE.replace("{}", repr(answer))


@pytest.fixture
def daemons(store_url: str, tmp_path: Path) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    env = {"NOVA_DATABASE_URL": store_url}
    first = DaemonProcess(tmp_path / "a", env=env).start()
    second = DaemonProcess(tmp_path / "b", env=env).start()
    try:
        with first.client() as a, second.client() as b:
            yield a, b
    finally:
        first.stop()
        second.stop()


def _eventually(probe: Callable[[], Any], expected: Any, within_s: float = 15) -> None:
    deadline = time.monotonic() + within_s
    seen = probe()
    while seen != expected and time.monotonic() < deadline:
        time.sleep(0.05)
        seen = probe()
    assert seen == expected


def test_changes_through_one_daemon_reach_the_other(
    daemons: tuple[httpx.Client, httpx.Client],
) -> None:
    a, b = daemons
    a.post(
        "/functions", json={"name": "shared", "runtime": "python", "code": _code("one")}
    ).raise_for_status()

    def on_b(path: str = "/functions/shared/invoke") -> Any:
        response = b.post(path, json={})
        return (
            response.json().get("output") if response.status_code == 200 else response.status_code
        )

    assert on_b() == "one"  # b loads it from the store and keeps a warm instance

    a.patch("/functions/shared", json={"code": _code("two")}).raise_for_status()
    _eventually(on_b, "two")  # b's warm instance was updated by the change log

    a.post("/functions/shared/versions", json={}).raise_for_status()
    a.patch("/functions/shared", json={"code": _code("three")}).raise_for_status()
    a.post("/functions/shared/versions", json={}).raise_for_status()
    a.put("/functions/shared/aliases/prod", json={"version": 1}).raise_for_status()
    _eventually(lambda: on_b("/functions/shared:prod/invoke"), "two")
    a.put("/functions/shared/aliases/prod", json={"version": 2}).raise_for_status()
    _eventually(lambda: on_b("/functions/shared:prod/invoke"), "three")  # cached route dropped

    a.delete("/functions/shared/aliases/prod").raise_for_status()
    _eventually(lambda: on_b("/functions/shared:prod/invoke"), 404)
    a.delete("/functions/shared/versions/1").raise_for_status()
    _eventually(lambda: on_b("/functions/shared:1/invoke"), 404)

    a.delete("/functions/shared").raise_for_status()
    _eventually(on_b, 404)
    a.post(
        "/functions", json={"name": "shared", "runtime": "python", "code": _code("reborn")}
    ).raise_for_status()
    _eventually(on_b, "reborn")  # a new function under the old name, not the old one's pool


def test_concurrent_publishes_through_both_daemons_never_share_a_number(
    daemons: tuple[httpx.Client, httpx.Client],
) -> None:
    a, b = daemons
    a.post(
        "/functions", json={"name": "race", "runtime": "python", "code": _code("0")}
    ).raise_for_status()

    def change_and_publish(index: int) -> int:
        client = (a, b)[index % 2]
        client.patch("/functions/race", json={"code": _code(str(index))}).raise_for_status()
        response = client.post("/functions/race/versions", json={})
        response.raise_for_status()
        return int(response.json()["number"])

    with ThreadPoolExecutor(20) as pool:
        list(pool.map(change_and_publish, range(20)))
    numbers = [item["number"] for item in a.get("/functions/race/versions").json()["items"]]
    assert numbers == list(range(1, len(numbers) + 1))  # no number twice, none skipped
    hashes = [item["code_hash"] for item in a.get("/functions/race/versions").json()["items"]]
    assert len(set(hashes)) == len(hashes)
