"""Schedules end to end: `@every 1s` fires on the real clock and its events run through the
async queue; the CLI adds, lists, pauses, resumes and deletes; bad input is refused with the
field named; two daemons on one SQLite or PostgreSQL store run every tick exactly once."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.daemon_process import DaemonProcess

# Appends the event it gets to the file its detail names (one JSON line per run).
SINK = """
import json
def handler(event, context):
    with open(event['detail']['sink'], 'a') as out:
        out.write(json.dumps(event) + '\\n')
"""


def _lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def _wait_for(probe: Callable[[], bool], within_s: float = 30) -> None:
    deadline = time.monotonic() + within_s
    while not probe():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.1)


def test_schedule_fires_on_the_real_clock_and_the_cli_manages_it(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    sink = tmp_path / "sink.jsonl"
    with daemon.client() as api:
        api.post(
            "/functions", json={"name": "sink", "runtime": "python", "code": SINK}
        ).raise_for_status()
        added = daemon.cli(
            "--json",
            "schedule",
            "add",
            "sink",
            "@every 1s",
            "--payload",
            json.dumps({"sink": str(sink)}),
        )
        assert added.returncode == 0, added.stderr
        schedule = json.loads(added.stdout)
        _wait_for(lambda: len(_lines(sink)) >= 2)
        runs = _lines(sink)
        assert {run["schedule_id"] for run in runs} == {schedule["id"]}
        assert len({run["time"] for run in runs}) == len(runs)
        assert runs[0]["source"] == "nova.schedule"

        listed = daemon.cli("schedule", "list")
        assert listed.returncode == 0, listed.stderr
        assert schedule["id"] in listed.stdout
        assert "enabled" in listed.stdout
        paused = daemon.cli("schedule", "pause", schedule["id"])
        assert paused.returncode == 0, paused.stderr
        before = api.get(f"/schedules/{schedule['id']}").json()
        assert before["enabled"] is False
        time.sleep(2.5)  # ticks pass while paused; none is claimed
        assert (
            api.get(f"/schedules/{schedule['id']}").json()["last_run_at"] == before["last_run_at"]
        )
        resumed = daemon.cli("schedule", "resume", schedule["id"])
        assert resumed.returncode == 0, resumed.stderr
        count = len(_lines(sink))
        _wait_for(lambda: len(_lines(sink)) > count)

        deleted = daemon.cli("schedule", "delete", schedule["id"])
        assert deleted.returncode == 0, deleted.stderr
        assert api.get(f"/schedules/{schedule['id']}").status_code == 404
        metrics = api.get("/metrics").text
        assert 'nova_schedule_runs_total{function="sink"}' in metrics


def test_bad_schedules_are_refused_with_the_field_named(api: httpx.Client) -> None:
    api.post(
        "/functions", json={"name": "sink", "runtime": "python", "code": SINK}
    ).raise_for_status()
    cases = [
        ({"function": "sink", "expression": "@every 0s"}, 422, "expression:"),
        ({"function": "sink", "expression": "61 * * * *"}, 422, "expression:"),
        ({"function": "sink", "expression": "@daily", "timezone": "Nowhere/X"}, 422, "timezone:"),
        ({"function": "sink", "expression": "@daily", "catch_up": "some"}, 422, "catch_up"),
        ({"function": "ghost", "expression": "@daily"}, 404, "ghost"),
    ]
    for body, status, text in cases:
        response = api.post("/schedules", json=body)
        assert response.status_code == status, (body, response.text)
        assert text in response.json()["error"]["message"]
    big = api.post(
        "/schedules", json={"function": "sink", "expression": "@daily", "payload": "x" * 7_000_000}
    )
    assert big.status_code == 413
    assert api.patch("/schedules/nope", json={"enabled": False}).status_code == 404


def test_two_daemons_on_one_store_run_each_tick_once(store_url: str, tmp_path: Path) -> None:
    sink = tmp_path / "sink.jsonl"
    env = {"NOVA_DATABASE_URL": store_url, "NOVA_SCHEDULES__POLL_S": "0.2"}
    first = DaemonProcess(tmp_path / "a", env=env).start()
    second = DaemonProcess(tmp_path / "b", env=env).start()
    try:
        with first.client() as api:
            api.post(
                "/functions", json={"name": "sink", "runtime": "python", "code": SINK}
            ).raise_for_status()
            body = {"function": "sink", "expression": "@every 1s", "payload": {"sink": str(sink)}}
            created = api.post("/schedules", json=body)
            assert created.status_code == 201, created.text
            schedule = created.json()
            _wait_for(lambda: len(_lines(sink)) >= 6, within_s=60)
            api.patch(f"/schedules/{schedule['id']}", json={"enabled": False}).raise_for_status()
        time.sleep(1)  # let the last queued events finish
    finally:
        first.stop()
        second.stop()
    times = [run["time"] for run in _lines(sink)]
    assert len(times) >= 6
    assert len(set(times)) == len(times), times
