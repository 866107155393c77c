"""Execution modes, crash recovery, the environment, and Node."""

from __future__ import annotations

import shutil

import httpx
import pytest

PID = "import os\ndef handler(event, context):\n    return os.getpid()\n"


def test_persistent_worker_killed_mid_run_recovers(api: httpx.Client) -> None:
    code = "import os, signal\ndef handler(event, context):\n    if event.get('die'):\n        os.kill(os.getpid(), signal.SIGKILL)\n    return 'alive'\n"
    api.post(
        "/functions", json={"name": "crash", "runtime": "python", "code": code}
    ).raise_for_status()
    died = api.post("/functions/crash/invoke", json={"die": True}).json()
    assert died["error"]["type"] == "Runtime.ExitError"
    assert api.post("/functions/crash/invoke", json={}).json()["output"] == "alive"


def test_process_mode_runs_a_fresh_process_each_time(api: httpx.Client) -> None:
    api.post(
        "/functions", json={"name": "fresh", "runtime": "python", "code": PID, "mode": "process"}
    ).raise_for_status()
    pids = {api.post("/functions/fresh/invoke", json={}).json()["output"] for _ in range(3)}
    assert len(pids) == 3


def test_persistent_mode_reuses_its_worker(api: httpx.Client) -> None:
    api.post(
        "/functions", json={"name": "warm", "runtime": "python", "code": PID}
    ).raise_for_status()
    pids = {api.post("/functions/warm/invoke", json={}).json()["output"] for _ in range(3)}
    assert len(pids) == 1


def test_nova_environment_and_context(api: httpx.Client) -> None:
    code = (
        "import os\n"
        "def handler(event, context):\n"
        "    env = {k: v for k, v in os.environ.items() if k.startswith('NOVA_') or k == 'GREETING'}\n"
        "    return {'env': env, 'remaining': context.get_remaining_time_in_millis(), 'rid': context.request_id,\n"
        "            'memory': context.memory_limit_in_mb}\n"
    )
    body = {
        "name": "envy",
        "runtime": "python",
        "code": code,
        "env": {"GREETING": "hi"},
        "memory_mb": 256,
        "timeout_s": 9,
    }
    api.post("/functions", json=body).raise_for_status()
    response = api.post(
        "/functions/envy/invoke",
        json={},
        headers={
            "X-Nova-Request-Id": "rid-123",
            "traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01",
        },
    )
    assert response.headers["x-nova-request-id"] == "rid-123"
    output = response.json()["output"]
    env = output["env"]
    assert env["NOVA_REQUEST_ID"] == "rid-123" == output["rid"]
    assert env["NOVA_FUNCTION_NAME"] == "envy"
    assert env["NOVA_FUNCTION_VERSION"] == "$LATEST"
    assert env["NOVA_MEMORY_LIMIT_MB"] == "256"
    assert output["memory"] == 256
    assert float(env["NOVA_TIMEOUT_S"]) == 9
    assert env["NOVA_RUNTIME"] == "python"
    assert env["NOVA_MODE"] == "persistent"
    assert env["NOVA_CODE_DIR"]
    assert env["NOVA_TRACE_PARENT"].startswith("00-aaaa")
    assert env["GREETING"] == "hi"
    assert 0 < output["remaining"] <= 9000


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed on this host")
def test_node_function(api: httpx.Client) -> None:
    code = "exports.handler = async (event, context) => {\n  console.log('from node');\n  return { sum: event.a + event.b, fn: context.functionName };\n};\n"
    created = api.post("/functions", json={"name": "nodey", "runtime": "node", "code": code})
    assert created.status_code == 201, created.text
    assert created.json()["handler"] == "index.handler"
    result = api.post("/functions/nodey/invoke", json={"a": 2, "b": 3}).json()
    assert result["output"] == {"sum": 5, "fn": "nodey"}
    failing = "exports.handler = async () => { throw new TypeError('nope'); };\n"
    api.patch("/functions/nodey", json={"code": failing}).raise_for_status()
    error = api.post("/functions/nodey/invoke", json={}).json()["error"]
    assert (error["type"], error["message"]) == ("TypeError", "nope")


def test_runtimes_lists_availability(api: httpx.Client) -> None:
    body = api.get("/runtimes").json()
    runtimes = {item["name"]: item for item in body["items"]}
    assert runtimes["python"]["available"] is True
    assert {"node", "python"} <= set(runtimes)
    assert body["backend"] == "process"
