"""/stats' running totals: they count starts (not requests that waited for one) and survive a
restart of the daemon on the same store."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.e2e.daemon_process import DaemonProcess

# A slow import keeps the instance starting until all eight requests are waiting for it.
SLOW_START = "import time\ntime.sleep(1.5)\ndef handler(event, context):\n    return 'ok'\n"
CRASH = "def handler(event, context):\n    raise ValueError('no')\n"


def _totals(daemon: DaemonProcess) -> dict[str, Any]:
    with daemon.client() as api:
        body: dict[str, Any] = api.get("/stats").json()
    assert body["invocations"]["persisted"] is True
    return body


def test_one_start_for_many_waiting_requests_and_totals_survive_a_restart(tmp_path: Path) -> None:
    # No periodic flush during the test: what the restart finds comes from the final flush of
    # a clean stop.
    daemon = DaemonProcess(tmp_path / "d", env={"NOVA_STORE__COUNTERS_FLUSH_S": "300"}).start()
    try:
        with daemon.client() as api:
            api.post(
                "/functions",
                json={
                    "name": "shared",
                    "runtime": "python",
                    "code": SLOW_START,
                    "max_replicas": 1,
                    "instance_concurrency": 8,
                },
            ).raise_for_status()
            api.post(
                "/functions", json={"name": "bad", "runtime": "python", "code": CRASH}
            ).raise_for_status()

        def call(_: int) -> int:
            with daemon.client() as client:
                return client.post("/functions/shared/invoke", json={}).status_code

        with ThreadPoolExecutor(8) as threads:
            assert set(threads.map(call, range(8))) == {200}
        with daemon.client() as api:
            assert api.post("/functions/bad/invoke", json={}).json()["error"] is not None

        body = _totals(daemon)
        since_start = body["this_daemon"]
        # Eight requests waited for the one instance their function may have: one start.
        assert since_start["waited_for_start"] == 9  # the eight, and the crashing function's
        assert since_start["cold_starts"] == 2
        assert since_start["invocations"] == 9
        assert since_start["errors"] == 1
        assert body["invocations"]["invocations"] == 9  # unflushed counts are included
    finally:
        assert daemon.stop() == 0  # a clean stop flushes what is left

    again = DaemonProcess(tmp_path / "d").start()
    try:
        body = _totals(again)
        assert body["this_daemon"]["invocations"] == 0
        totals = body["invocations"]
        assert (totals["invocations"], totals["errors"], totals["cold_starts"]) == (9, 1, 2)
        with again.client() as api:
            assert api.post("/functions/shared/invoke", json={}).status_code == 200
        assert _totals(again)["invocations"]["invocations"] == 10
    finally:
        again.stop()
