"""kill -9 of the daemon with 1,000 accepted asynchronous events pending or running loses none:
after a restart on the same store each has run at least once, and an idempotency key given
again maps to the event already stored (on SQLite and PostgreSQL)."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.e2e.daemon_process import DaemonProcess

EVENTS = 1000
# Each run appends its request id to a file; until the gate file exists it waits, so the
# events are still pending (or running) when the daemon is killed.
GATED = """
import os, time
def handler(event, context):
    while not os.path.exists(event['gate']):
        time.sleep(0.02)
    with open(event['out'], 'a') as out:
        out.write(context.aws_request_id + '\\n')
    return 'ok'
"""


def _submit_all(daemon: DaemonProcess, event: dict[str, str]) -> list[str]:
    """Every event, by 8 keep-alive clients; even ones carry an idempotency key."""

    def submit(indexes: range) -> list[str]:
        ids = []
        with daemon.client() as api:
            for index in indexes:
                headers = {"X-Nova-Invocation-Type": "Event"}
                if index % 2 == 0:
                    headers["Idempotency-Key"] = f"key-{index}"
                response = api.post("/functions/gated/invoke", json=event, headers=headers)
                assert response.status_code == 202, response.text
                ids.append(response.json()["request_id"])
        return ids

    with ThreadPoolExecutor(8) as pool:
        parts = pool.map(submit, [range(start, EVENTS, 8) for start in range(8)])
        by_index = {
            index: part[n]
            for start, part in enumerate(parts)
            for n, index in enumerate(range(start, EVENTS, 8))
        }
    return [by_index[index] for index in range(EVENTS)]


@pytest.mark.timeout(300)
def test_kill_9_loses_no_accepted_event(tmp_path: Path, store_url: str) -> None:
    env = {"NOVA_DATABASE_URL": store_url, "NOVA_EVENTS__LEASE_S": "2"}
    data = tmp_path / "data"
    gate, out = tmp_path / "gate", tmp_path / "runs.txt"
    event = {"gate": str(gate), "out": str(out)}
    daemon = DaemonProcess(data, env=env).start()
    try:
        with daemon.client() as api:
            body = {"name": "gated", "runtime": "python", "code": GATED, "max_replicas": 4}
            api.post("/functions", json=body).raise_for_status()
        ids = _submit_all(daemon, event)
        assert len(set(ids)) == EVENTS
        with daemon.client() as api:
            queue = api.get("/stats").json()["async"]
        assert queue["pending"] + queue["running"] == EVENTS  # none could finish: gated
        assert queue["running"] > 0
    finally:
        daemon.stop(signal.SIGKILL)
    gate.touch()
    daemon = DaemonProcess(data, env=env).start()
    try:
        with daemon.client() as api:
            # The keys again: the events already stored answer, nothing new is stored.
            for index in range(0, 20, 2):
                again = api.post(
                    "/functions/gated/invoke",
                    json=event,
                    headers={"X-Nova-Invocation-Type": "Event", "Idempotency-Key": f"key-{index}"},
                )
                assert again.json()["request_id"] == ids[index]
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                queue = api.get("/stats").json()["async"]
                if queue["pending"] + queue["running"] == 0:
                    break
                time.sleep(0.2)
            assert queue["pending"] + queue["running"] == 0, queue
            statuses = {
                api.get(f"/invocations/{request_id}").json()["status"] for request_id in ids
            }
        assert statuses == {"succeeded"}
        runs = out.read_text().split()
        assert set(runs) == set(ids)  # each ran at least once
        assert len(runs) < EVENTS + 50  # only the few running at the kill ran twice
    finally:
        daemon.stop()
