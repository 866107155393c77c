"""The hot-reload story every backend must tell, over HTTP against a real daemon.

A warm instance of a Python or Node function gets a code-only update while an invocation runs:
that invocation finishes on the old code, the next one runs the new code on the same instance
(same id, same sandbox pid: no new sandbox) in a restarted worker (its module state starts
over); a config change still replaces the instance.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

SOURCES = {
    "python": (
        "import os, time\n"
        "calls = 0\n"
        "def handler(event, context):\n"
        "    global calls\n"
        "    calls += 1\n"
        "    time.sleep(event.get('sleep', 0))\n"
        "    return {'v': %d, 'calls': calls, 'worker': os.getpid()}\n"
    ),
    "node": (
        "let calls = 0;\n"
        "exports.handler = async (event) => {\n"
        "  calls += 1;\n"
        "  await new Promise((resolve) => setTimeout(resolve, (event.sleep || 0) * 1000));\n"
        "  return { v: %d, calls, worker: process.pid };\n"
        "};\n"
    ),
}
RUNNING_FOR_S = 1.0  # how long the invocation caught by the update runs
WAIT_FOR_S = 30.0  # how long to wait for a state the daemon must reach (not a speed check)


def invoke(api: httpx.Client, name: str, event: dict[str, Any] | None = None) -> dict[str, Any]:
    response = api.post(f"/functions/{name}/invoke", json=event or {})
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    assert result["error"] is None, result
    return result


def instances(api: httpx.Client, name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api.get(f"/functions/{name}/instances").json()["items"]
    return items


def _wait_until_running(api: httpx.Client, name: str) -> None:
    deadline = time.monotonic() + WAIT_FOR_S
    while not any(item["inflight"] for item in instances(api, name)):
        assert time.monotonic() < deadline, f"no invocation of {name} started"
        time.sleep(0.02)


def check_hot_reload(api: httpx.Client, name: str, runtime: str, concurrency: int = 1) -> None:
    source = SOURCES[runtime]
    api.post(
        "/functions",
        json={
            "name": name,
            "runtime": runtime,
            "code": source % 1,
            "instance_concurrency": concurrency,
        },
    ).raise_for_status()
    old_state = _ModuleState()
    first = invoke(api, name)
    assert first["cold_start"] is True
    old_state.check(first["output"], 1)
    warm = invoke(api, name)
    assert warm["cold_start"] is False
    old_state.check(warm["output"], 1)
    [before] = instances(api, name)

    with ThreadPoolExecutor(1) as background:
        running = background.submit(invoke, api, name, {"sleep": RUNNING_FOR_S})
        _wait_until_running(api, name)
        api.patch(f"/functions/{name}", json={"code": source % 2}).raise_for_status()
        caught = running.result()
    old_state.check(caught["output"], 1)  # the old code, to the end

    new_state = _ModuleState()
    after = invoke(api, name)
    new_state.check(after["output"], 2)  # module state starts over: the worker restarted
    assert after["output"]["worker"] not in old_state.calls
    assert after["cold_start"] is False
    [same] = instances(api, name)
    assert (same["id"], same["pid"]) == (before["id"], before["pid"])  # the same sandbox
    assert same["code_hash"] != before["code_hash"]
    new_state.check(invoke(api, name)["output"], 2)

    api.patch(f"/functions/{name}", json={"memory_mb": 256}).raise_for_status()
    replaced = invoke(api, name)
    _ModuleState().check(replaced["output"], 2)
    assert replaced["cold_start"] is True  # a config change still needs a new instance
    assert before["id"] not in [item["id"] for item in instances(api, name)]


class _ModuleState:
    """A module-level call counter per worker. With several workers per instance a call may
    land on any of them (the agent answers before it marks the worker idle), so each answer is
    checked against the calls its own worker has had."""

    def __init__(self) -> None:
        self.calls: Counter[int] = Counter()

    def check(self, output: dict[str, Any], code_version: int) -> None:
        self.calls[output["worker"]] += 1
        assert (output["v"], output["calls"]) == (code_version, self.calls[output["worker"]])
