"""SIGTERM drains: in-flight invocations finish, instances stop, logs are flushed."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

import httpx

from tests.e2e.daemon_process import DaemonProcess


def _processes_under(data_dir: Path) -> list[int]:
    """Pids whose working directory is inside the data dir (every instance's agent is)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if str(data_dir.resolve()) in os.readlink(proc / "cwd"):
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def test_sigterm_finishes_in_flight_work_then_stops_instances(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path / "data").start()
    code = "import time\ndef handler(event, context):\n    time.sleep(1.5)\n    return 'finished'\n"
    with daemon.client() as api:
        api.post(
            "/functions", json={"name": "long", "runtime": "python", "code": code}
        ).raise_for_status()
        results: list[httpx.Response] = []
        caller = threading.Thread(
            target=lambda: results.append(api.post("/functions/long/invoke", json={}))
        )
        caller.start()
        time.sleep(0.7)  # the invocation is running
        assert _processes_under(tmp_path / "data")
        assert daemon.process is not None
        daemon.process.send_signal(signal.SIGTERM)
        caller.join(10)
    assert daemon.process.wait(15) == 0
    assert results[0].status_code == 200
    assert results[0].json()["output"] == "finished"
    assert "nova stopped" in daemon.log()
    assert _processes_under(tmp_path / "data") == []

    restarted = DaemonProcess(tmp_path / "data").start()
    try:
        with restarted.client() as api:
            logs = api.get("/functions/long/logs").json()["items"]
            assert [log["success"] for log in logs] == [True]  # written before the daemon exited
    finally:
        restarted.stop()


def test_during_the_drain_new_invocations_get_503_rather_than_a_refused_connection(
    tmp_path: Path,
) -> None:
    daemon = DaemonProcess(tmp_path / "data").start()
    code = "import time\ndef handler(event, context):\n    time.sleep(2)\n    return 'finished'\n"
    with daemon.client() as api:
        api.post(
            "/functions", json={"name": "long", "runtime": "python", "code": code}
        ).raise_for_status()
        results: list[httpx.Response] = []
        caller = threading.Thread(
            target=lambda: results.append(api.post("/functions/long/invoke", json={}))
        )
        caller.start()
        time.sleep(0.7)
        assert daemon.process is not None
        daemon.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        with daemon.client() as fresh:  # a new connection: the socket still accepts
            refused = fresh.post("/functions/long/invoke", json={})
            ready = fresh.get("/health/ready")
        caller.join(10)
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "Daemon.ShuttingDown"
    assert ready.status_code == 503
    assert ready.json()["status"] == "draining"
    assert results[0].status_code == 200
    assert results[0].json()["output"] == "finished"
    assert daemon.process.wait(15) == 0


def test_a_second_sigint_forces_exit(tmp_path: Path) -> None:
    daemon = DaemonProcess(
        tmp_path / "data", env={"NOVA_LOG_LEVEL": "info"}, args=["--shutdown-timeout", "60"]
    ).start()
    code = "import time\ndef handler(event, context):\n    time.sleep(30)\n"
    with daemon.client() as api:
        api.post(
            "/functions", json={"name": "stuck", "runtime": "python", "code": code}
        ).raise_for_status()
        caller = threading.Thread(
            target=_post_ignoring_errors, args=(api, "/functions/stuck/invoke")
        )
        caller.start()
        time.sleep(1.0)
        assert daemon.process is not None
        daemon.process.send_signal(signal.SIGINT)
        time.sleep(0.5)
        assert daemon.process.poll() is None  # draining: waits for the stuck invocation
        started = time.monotonic()
        daemon.process.send_signal(signal.SIGINT)
        daemon.process.wait(15)
        assert time.monotonic() - started < 10
        caller.join(15)
    assert _processes_under(tmp_path / "data") == []  # instances still stopped on the way out


def _post_ignoring_errors(api: httpx.Client, path: str) -> None:
    # The forced exit cuts this request off; that is the point of the test.
    with contextlib.suppress(httpx.HTTPError):
        api.post(path, json={})
