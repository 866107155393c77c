"""Pool behaviour seen from outside: single-flight cold starts, max_replicas, throttling."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.e2e.daemon_process import DaemonProcess

SLOW_PID = "import os, time\ndef handler(event, context):\n    time.sleep(event.get('sleep', 0.2))\n    return os.getpid()\n"


def test_fifty_concurrent_cold_invokes_start_at_most_max_replicas(
    api: httpx.Client, daemon: DaemonProcess
) -> None:
    api.post(
        "/functions",
        json={"name": "herd", "runtime": "python", "code": SLOW_PID, "max_replicas": 4},
    ).raise_for_status()

    def call(_: int) -> dict[str, object]:
        with daemon.client() as client:
            return client.post("/functions/herd/invoke", json={"sleep": 0.2}).json()  # type: ignore[no-any-return]

    with ThreadPoolExecutor(50) as threads:
        results = list(threads.map(call, range(50)))
    assert all(result["error"] is None for result in results), results
    pids = {result["output"] for result in results}
    assert 1 <= len(pids) <= 4
    herd = next(pool for pool in api.get("/stats").json()["pools"] if pool["function"] == "herd")
    assert herd["instances"] <= 4
    assert herd["started"] <= 4  # single flight: never more starts than max_replicas


def test_requests_beyond_max_replicas_wait_then_get_429(tmp_path: object) -> None:
    from pathlib import Path

    daemon = DaemonProcess(
        Path(str(tmp_path)) / "d", env={"NOVA_POOL__QUEUE_TIMEOUT_S": "0.3"}
    ).start()
    try:
        with daemon.client() as api:
            api.post(
                "/functions",
                json={"name": "one", "runtime": "python", "code": SLOW_PID, "max_replicas": 1},
            ).raise_for_status()

            def call(sleep: float) -> httpx.Response:
                with daemon.client() as client:
                    return client.post("/functions/one/invoke", json={"sleep": sleep})

            with ThreadPoolExecutor(2) as threads:
                first = threads.submit(call, 2.0)
                time.sleep(0.8)  # the first call holds the only instance
                throttled = threads.submit(call, 0).result()
                assert first.result().status_code == 200
            assert throttled.status_code == 429
            assert throttled.json()["error"]["code"] == "Function.TooManyRequests"
            assert throttled.headers["retry-after"]
    finally:
        daemon.stop()


def test_min_replicas_are_prewarmed(api: httpx.Client) -> None:
    api.post(
        "/functions",
        json={"name": "prewarm", "runtime": "python", "code": SLOW_PID, "min_replicas": 2},
    ).raise_for_status()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pools = {pool["function"]: pool for pool in api.get("/stats").json()["pools"]}
        if pools.get("prewarm", {}).get("instances") == 2:
            break
        time.sleep(0.1)
    assert pools["prewarm"]["instances"] == 2
    assert api.post("/functions/prewarm/invoke", json={"sleep": 0}).json()["cold_start"] is False


def test_idle_instances_are_reaped_after_the_ttl(tmp_path: Path) -> None:
    env = {"NOVA_POOL__IDLE_TTL_S": "0.5", "NOVA_POOL__CLEANUP_INTERVAL_S": "0.2"}
    daemon = DaemonProcess(tmp_path / "d", env=env).start()
    try:
        with daemon.client() as api:
            api.post(
                "/functions", json={"name": "idle", "runtime": "python", "code": SLOW_PID}
            ).raise_for_status()
            assert (
                api.post("/functions/idle/invoke", json={"sleep": 0}).json()["cold_start"] is True
            )
            deadline = time.monotonic() + 10
            while (
                time.monotonic() < deadline and api.get("/functions/idle/instances").json()["items"]
            ):
                time.sleep(0.1)
            assert api.get("/functions/idle/instances").json()["items"] == []
            assert (
                api.post("/functions/idle/invoke", json={"sleep": 0}).json()["cold_start"] is True
            )
    finally:
        daemon.stop()
