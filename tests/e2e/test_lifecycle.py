"""The issue's main story over HTTP and the CLI: create, invoke cold then warm, update, delete."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.e2e.daemon_process import DaemonProcess

ECHO_PID = "import os\ndef handler(event, context):\n    return {'v': %d, 'pid': os.getpid(), 'event': event}\n"


def test_create_invoke_update_delete_over_http(api: httpx.Client) -> None:
    created = api.post(
        "/functions", json={"name": "echo", "runtime": "python", "code": ECHO_PID % 1}
    )
    assert created.status_code == 201, created.text
    record = created.json()
    assert record["handler"] == "handler.handler"
    assert len(record["code_hash"]) == 64

    cold = api.post("/functions/echo/invoke", json={"n": 1}).json()
    warm = api.post("/functions/echo/invoke", json={"n": 2}).json()
    assert cold["cold_start"] is True
    assert warm["cold_start"] is False
    assert cold["output"] == {"v": 1, "pid": cold["output"]["pid"], "event": {"n": 1}}
    assert warm["output"]["pid"] == cold["output"]["pid"]
    assert set(cold) == {
        "request_id",
        "output",
        "error",
        "duration_ms",
        "total_ms",
        "cold_start",
        "start",
        "phases",
        "version",
    }

    updated = api.patch("/functions/echo", json={"code": ECHO_PID % 2}).json()
    assert updated["revision"] == 2
    assert updated["code_hash"] != record["code_hash"]
    after = api.post("/functions/echo/invoke", json={}).json()
    assert after["output"]["v"] == 2
    assert after["output"]["pid"] != cold["output"]["pid"] or not after["cold_start"]

    assert api.delete("/functions/echo").status_code == 200
    gone = api.post("/functions/echo/invoke", json={})
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "Function.NotFound"


def test_delete_lets_a_running_invocation_finish(api: httpx.Client) -> None:
    code = "import time\ndef handler(event, context):\n    time.sleep(1)\n    return 'finished'\n"
    api.post("/functions", json={"name": "slow", "runtime": "python", "code": code})
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(api.post, "/functions/slow/invoke", json={})
        time.sleep(0.5)
        assert api.delete("/functions/slow").status_code == 200
        assert api.post("/functions/slow/invoke", json={}).status_code == 404
        result = running.result(10)
    assert result.status_code == 200
    assert result.json()["output"] == "finished"
    # Created again under the same name, it is a new function with its own code and history.
    api.post("/functions", json={"name": "slow", "runtime": "python", "code": ECHO_PID % 3})
    again = api.post("/functions/slow/invoke", json={}).json()
    assert again["output"]["v"] == 3
    assert again["total_ms"] >= again["duration_ms"] > 0
    own = _logs_when(api, "/functions/slow/logs", 1)
    assert [log["id"] for log in own] == [again["request_id"]]
    assert own[0]["total_ms"] == again["total_ms"]
    assert own[0]["duration_ms"] == again["duration_ms"]
    every = _logs_when(api, "/invocations?function=slow", 2)  # the deleted one's stays readable
    assert {log["id"] for log in every} == {again["request_id"], result.json()["request_id"]}
    assert len({log["function_id"] for log in every}) == 2


def _logs_when(api: httpx.Client, path: str, count: int) -> list[dict[str, object]]:
    """The log records at ``path`` once there are ``count`` (they are written in batches)."""
    deadline = time.monotonic() + 10
    while True:
        items: list[dict[str, object]] = api.get(path).json()["items"]
        if len(items) >= count or time.monotonic() > deadline:
            return items
        time.sleep(0.1)


def test_hot_reload_keeps_the_instance(api: httpx.Client) -> None:
    api.post(
        "/functions", json={"name": "reload", "runtime": "python", "code": ECHO_PID % 1}
    ).raise_for_status()
    before = api.post("/functions/reload/invoke", json={}).json()
    api.patch("/functions/reload", json={"code": ECHO_PID % 2}).raise_for_status()
    after = api.post("/functions/reload/invoke", json={}).json()
    assert after["output"]["v"] == 2
    stats = api.get("/stats").json()
    reload_pool = next(pool for pool in stats["pools"] if pool["function"] == "reload")
    assert reload_pool["instances"] == 1  # reloaded in place, not replaced
    assert after["cold_start"] is False
    assert before["output"]["pid"] != after["output"]["pid"]  # the worker restarted on new code


def test_config_change_replaces_the_instance(api: httpx.Client) -> None:
    api.post(
        "/functions",
        json={
            "name": "conf",
            "runtime": "python",
            "code": "import os\ndef handler(e, c):\n    return os.environ.get('COLOUR')\n",
        },
    ).raise_for_status()
    assert api.post("/functions/conf/invoke", json={}).json()["output"] is None
    api.patch("/functions/conf", json={"env": {"COLOUR": "teal"}}).raise_for_status()
    result = api.post("/functions/conf/invoke", json={}).json()
    assert result["output"] == "teal"
    assert result["cold_start"] is True


def test_the_cli_drives_the_same_story(daemon: DaemonProcess, tmp_path: Path) -> None:
    source = tmp_path / "handler.py"
    source.write_text(
        "def handler(event, context):\n    print('hi from', context.function_name)\n    return {'got': event}\n"
    )
    created = daemon.cli(
        "fn", "create", "cli-fn", "--runtime", "python", "--code-file", str(source)
    )
    assert created.returncode == 0, created.stderr

    listed = daemon.cli("--json", "fn", "list")
    assert [item["name"] for item in json.loads(listed.stdout)["items"]] == ["cli-fn"]

    invoked = daemon.cli("--json", "invoke", "cli-fn", "--data", '{"x": 1}')
    assert invoked.returncode == 0, invoked.stderr
    assert json.loads(invoked.stdout)["output"] == {"got": {"x": 1}}

    source.write_text("def handler(event, context):\n    return 'v2'\n")
    assert daemon.cli("fn", "update", "cli-fn", "--code-file", str(source)).returncode == 0
    assert json.loads(daemon.cli("--json", "invoke", "cli-fn").stdout)["output"] == "v2"

    instances = daemon.cli("--json", "fn", "instances", "cli-fn")
    assert instances.returncode == 0, instances.stderr
    [instance] = json.loads(instances.stdout)["items"]
    assert instance["id"].startswith("cli-fn-")
    assert instance["invocations"] >= 1

    stats = daemon.cli("--json", "stats")
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["invocations"]["invocations"] >= 2

    logs = daemon.cli("--json", "logs", "cli-fn", "--limit", "5")
    assert logs.returncode == 0, logs.stderr
    entries = json.loads(logs.stdout)["items"]
    assert any("hi from cli-fn" in entry["stdout"] for entry in entries)

    assert daemon.cli("fn", "delete", "cli-fn", "--yes").returncode == 0
    missing = daemon.cli("fn", "get", "cli-fn")
    assert missing.returncode == 3  # NOT_FOUND
    assert "does not exist" in missing.stderr


def test_functions_survive_a_daemon_restart(tmp_path: Path) -> None:
    first = DaemonProcess(tmp_path / "data").start()
    try:
        with first.client() as api:
            api.post(
                "/functions", json={"name": "durable", "runtime": "python", "code": ECHO_PID % 7}
            ).raise_for_status()
            api.post("/functions/durable/invoke", json={}).raise_for_status()
    finally:
        assert first.stop() == 0
    second = DaemonProcess(tmp_path / "data").start()
    try:
        with second.client() as api:
            assert api.get("/functions/durable").json()["revision"] == 1
            assert len(api.get("/functions/durable/logs").json()["items"]) == 1  # flushed on stop
            result = api.post("/functions/durable/invoke", json={}).json()
            assert result["output"]["v"] == 7
            assert result["cold_start"] is True
    finally:
        second.stop()


def test_cli_logs_follow_streams_new_invocations(daemon: DaemonProcess, api: httpx.Client) -> None:
    import signal
    import subprocess
    import time

    from tests.e2e.daemon_process import NOVA

    code = "def handler(event, context):\n    print('seen', event['n'])\n    return event['n']\n"
    api.post(
        "/functions", json={"name": "followed", "runtime": "python", "code": code}
    ).raise_for_status()
    follower = subprocess.Popen(
        [NOVA, "--endpoint", daemon.url, "--json", "logs", "followed", "--follow"],
        stdout=subprocess.PIPE,
        text=True,
        env=daemon.cli_env,
    )
    try:
        time.sleep(1.0)  # the first poll has happened: what follows is new
        for n in (1, 2):
            api.post("/functions/followed/invoke", json={"n": n}).raise_for_status()
        assert follower.stdout is not None
        lines = [json.loads(follower.stdout.readline()) for _ in range(2)]
        assert [line["stdout"].strip() for line in lines] == ["seen 1", "seen 2"]
    finally:
        follower.send_signal(signal.SIGINT)
        assert follower.wait(10) == 0  # Ctrl-C ends --follow cleanly
