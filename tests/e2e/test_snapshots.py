"""Function snapshots end to end: a real daemon on containers, over HTTP and the CLI."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from nova.sandbox.container.backend import ContainerBackend
from tests.e2e.daemon_process import DaemonProcess, skip_unless_available

_INFO = ContainerBackend.probe()
skip_unless_available(_INFO)

CODE = """
import os, random
loaded = random.random()
calls = 0


def handler(event, context):
    global calls
    calls += 1
    return {"v": %d, "calls": calls, "loaded": loaded, "pid": os.getpid()}
"""


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    env = {"NOVA_SANDBOX__ALLOW_PROCESS_BACKEND": "false", "NOVA_BACKEND": "container"}
    process = DaemonProcess(tmp_path / "data", env=env).start()
    try:
        yield process
    finally:
        process.stop()


def _snapshots(api: httpx.Client, function: str) -> list[dict[str, object]]:
    items = api.get("/snapshots").json()["items"]
    return [item for item in items if item["function"] == function]


def _wait_ready(api: httpx.Client, function: str) -> dict[str, object]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready = [s for s in _snapshots(api, function) if s["state"] == "ready"]
        if ready:
            return ready[0]
        time.sleep(0.05)
    raise AssertionError(f"no ready snapshot of {function}: {_snapshots(api, function)}")


def test_first_cold_start_builds_the_snapshot_and_scale_to_zero_forks_it(
    daemon: DaemonProcess,
) -> None:
    assert _INFO.available, _INFO.reason  # under CI=true an unavailable backend fails here
    with daemon.client() as api:
        api.post("/functions", json={"name": "snap", "runtime": "python", "code": CODE % 1})
        first = api.post("/functions/snap/invoke", json={}).json()
        assert first["start"] == "cold"  # a miss: started the normal way, the build begins
        snapshot = _wait_ready(api, "snap")
        assert snapshot["misses"] == 1
        assert snapshot["size_bytes"] > 0

        stopped = api.delete("/functions/snap/instances").json()
        assert stopped == {"stopped": 1}
        forked = api.post("/functions/snap/invoke", json={}).json()
        assert forked["start"] == "snapshot"
        assert forked["cold_start"] is True
        assert forked["output"]["calls"] == 1  # module state as the init left it
        assert forked["output"]["loaded"] != first["output"]["loaded"]  # not the first instance's
        warm = api.post("/functions/snap/invoke", json={}).json()
        assert (warm["start"], warm["output"]["calls"]) == ("warm", 2)
        assert _snapshots(api, "snap")[0]["hits"] == 1
        stats = api.get("/stats").json()
        assert "snapshot_starts" in json.dumps(stats)

        # A code update drops the snapshot; the new code answers.
        api.patch("/functions/snap", json={"code": CODE % 2}).raise_for_status()
        api.delete("/functions/snap/instances")
        assert api.post("/functions/snap/invoke", json={}).json()["output"]["v"] == 2
        assert all(
            s["state"] != "ready" or s["id"] != snapshot["id"] for s in _snapshots(api, "snap")
        )
        assert "dropped snapshot" in daemon.log()


def test_the_cli_lists_creates_and_deletes_snapshots(daemon: DaemonProcess) -> None:
    with daemon.client() as api:
        api.post("/functions", json={"name": "clisnap", "runtime": "python", "code": CODE % 1})
    created = daemon.cli("snapshot", "create", "clisnap")
    assert created.returncode == 0, created.stderr
    assert "is ready" in created.stdout
    listed = daemon.cli("snapshot", "list")
    assert "clisnap" in listed.stdout
    snapshot_id = json.loads(daemon.cli("--json", "snapshot", "list").stdout)["items"][0]["id"]
    scaled = daemon.cli("fn", "scale", "clisnap", "0")
    assert scaled.returncode == 0, scaled.stderr
    assert "stopped 0 instance(s)" in scaled.stdout
    assert daemon.cli("snapshot", "delete", snapshot_id).returncode == 0
    assert "clisnap" not in daemon.cli("snapshot", "list").stdout
    missing = daemon.cli("snapshot", "delete", snapshot_id)
    assert missing.returncode != 0
    assert "nova snapshot list" in missing.stderr


def test_bad_snapshot_requests_answer_clear_errors(daemon: DaemonProcess) -> None:
    with daemon.client() as api:
        missing = api.delete("/snapshots/snap-nope")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "Snapshot.NotFound"
        assert api.post("/functions/ghost/snapshot").json()["error"]["code"] == "Function.NotFound"
        api.post(
            "/functions",
            json={
                "name": "secretive",
                "runtime": "python",
                "code": CODE % 1,
                "env": {"K": "$SECRET:k"},
            },
        )
        api.put("/secrets/k", json={"value": "hidden"}).raise_for_status()
        refused = api.post("/functions/secretive/snapshot")
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "Snapshot.Unavailable"
        assert "secrets" in refused.json()["error"]["message"]
        assert api.delete("/functions/ghost/instances").status_code == 404
        assert daemon.cli("fn", "scale", "secretive", "2").returncode != 0


SOCKET_AT_INIT = """
import socket
held = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)


def handler(event, context):
    print("handled")
    return "ok"
"""


def test_init_code_that_opened_a_socket_is_warned_in_the_function_s_logs(
    daemon: DaemonProcess,
) -> None:
    with daemon.client() as api:
        body = {"name": "sockets", "runtime": "python", "code": SOCKET_AT_INIT}
        api.post("/functions", json=body).raise_for_status()
        api.post("/functions/sockets/snapshot").raise_for_status()
        first = api.post("/functions/sockets/invoke", json={}).json()
        assert first["start"] == "snapshot", first
        second = api.post("/functions/sockets/invoke", json={}).json()
        logs = _logs(api, "sockets", 2)
    by_request = {item["id"]: item for item in logs}
    warning = "socket(s) the module-level init code opened were closed"
    assert warning in by_request[first["request_id"]]["stderr"]
    assert warning not in by_request[second["request_id"]]["stderr"]  # once per instance
    shown = daemon.cli("logs", "sockets")
    assert warning in shown.stdout, shown.stdout


def _logs(api: httpx.Client, function: str, count: int) -> list[dict[str, str]]:
    deadline = time.monotonic() + 30  # log records are written in the background
    while time.monotonic() < deadline:
        items: list[dict[str, str]] = api.get(f"/functions/{function}/logs").json()["items"]
        if len(items) >= count:
            return items
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} log records of {function}")


NODE_CODE = (
    "let calls = 0;\nexports.handler = async () => ({ calls: ++calls, pid: process.pid });\n"
)


RUBY_CODE = {
    "handler.rb": "$calls = 0\ndef handler(event:, context:)\n  { calls: $calls += 1 }\nend\n"
}
PRESTARTED = {
    "node": {"handler": "index.handler", "code": NODE_CODE},
    "ruby": {"files": RUBY_CODE},
}


@pytest.mark.parametrize("runtime", sorted(PRESTARTED))
def test_a_cold_start_takes_a_prestarted_runtime(daemon: DaemonProcess, runtime: str) -> None:
    name = f"{runtime}fn"
    with daemon.client() as api:
        body = {"name": name, "runtime": runtime, **PRESTARTED[runtime]}
        api.post("/functions", json=body).raise_for_status()
        first = api.post(f"/functions/{name}/invoke", json={}).json()
        assert first["start"] == "cold", first  # a miss: the pool of its kind fills now
        _wait_prestarted(api, runtime)
        api.delete(f"/functions/{name}/instances").raise_for_status()
        second = api.post(f"/functions/{name}/invoke", json={}).json()
        assert (second["start"], second["cold_start"]) == ("prestarted", True), second
        assert second["output"]["calls"] == 1
        assert second["phases"]["init_ms"] is not None
        pool = _wait_prestarted(api, runtime)
        assert (pool["hits"], pool["misses"]) == (1, 1)
        logs = _logs(api, name, 2)
    assert {item["start"] for item in logs} == {"cold", "prestarted"}
    listed = daemon.cli("snapshot", "list")
    assert "prestarted" in listed.stdout, listed.stdout


def _wait_prestarted(api: httpx.Client, runtime: str) -> dict[str, object]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        items = api.get("/snapshots").json()["items"]
        pools = [i for i in items if i["kind"] == "prestarted" and runtime in str(i["detail"])]
        if pools and pools[0]["state"] == "ready":
            return pools[0]
        time.sleep(0.05)
    raise AssertionError(f"no ready pool of pre-started {runtime} runtimes")
