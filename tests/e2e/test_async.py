"""Asynchronous invocation end to end: 202 then the result, idempotency, retries, dead letters,
replay after a fix, destinations, and the refusals at submit."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.daemon_process import DaemonProcess

ECHO = "def handler(event, context):\n    return {'got': event, 'id': context.aws_request_id}\n"
# Fails until it has run `fail_times` times for this event (a counter file per event path).
FLAKY = """
import os
def handler(event, context):
    path = event['path']
    count = int(open(path).read()) + 1 if os.path.exists(path) else 1
    open(path, 'w').write(str(count))
    if count <= event['fail_times']:
        raise RuntimeError(f'attempt {count} fails')
    return count
"""
BROKEN = "def handler(event, context):\n    raise ValueError('bug')\n"
FIXED = "def handler(event, context):\n    return 'fixed'\n"
# Records what it receives (a destination record) into the file the record's payload names.
SINK = """
import json
def handler(event, context):
    with open(event['requestPayload']['sink'], 'a') as out:
        out.write(json.dumps(event) + '\\n')
"""
FAST_RETRY = {"handler_error": {"attempts": 3, "backoff_s": 0.05, "max_backoff_s": 0.2}}
EVENT = {"X-Nova-Invocation-Type": "Event"}


def _create(api: httpx.Client, name: str, code: str, **fields: Any) -> None:
    body = {"name": name, "runtime": "python", "code": code, **fields}
    api.post("/functions", json=body).raise_for_status()


def _submit(api: httpx.Client, name: str, event: Any, **headers: str) -> str:
    response = api.post(f"/functions/{name}/invoke", json=event, headers={**EVENT, **headers})
    assert response.status_code == 202, response.text
    request_id: str = response.json()["request_id"]
    assert response.headers["x-nova-request-id"] == request_id
    return request_id


def _finished(api: httpx.Client, request_id: str, timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        body: dict[str, Any] = api.get(f"/invocations/{request_id}").json()
        if body["status"] in ("succeeded", "dead") or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def test_event_is_accepted_then_runs(api: httpx.Client) -> None:
    _create(api, "echo", ECHO)
    request_id = _submit(api, "echo", {"n": 1})
    body = _finished(api, request_id)
    assert body["status"] == "succeeded", body
    assert body["attempts"] == 1
    assert body["errors"] == []
    assert body["result"]["output"] == {"got": {"n": 1}, "id": request_id}
    assert body["payload"] == {"n": 1}
    assert body["source"] == "api"
    # The same request, synchronously, is unchanged by the header's absence or default value.
    sync = api.post(
        "/functions/echo/invoke",
        json={"n": 2},
        headers={"X-Nova-Invocation-Type": "RequestResponse"},
    )
    assert sync.status_code == 200
    assert sync.json()["output"]["got"] == {"n": 2}


def test_idempotency_key_runs_once(api: httpx.Client, tmp_path: Path) -> None:
    _create(api, "flaky", FLAKY)
    event = {"path": str(tmp_path / "count"), "fail_times": 0}
    first = _submit(api, "flaky", event, **{"Idempotency-Key": "order-1"})
    again = _submit(api, "flaky", event, **{"Idempotency-Key": "order-1"})
    assert again == first
    assert _finished(api, first)["status"] == "succeeded"
    assert _submit(api, "flaky", event, **{"Idempotency-Key": "order-1"}) == first
    assert (tmp_path / "count").read_text() == "1"


def test_retries_then_succeeds(api: httpx.Client, tmp_path: Path) -> None:
    _create(api, "flaky", FLAKY, async_retry=FAST_RETRY)
    request_id = _submit(api, "flaky", {"path": str(tmp_path / "n"), "fail_times": 2})
    body = _finished(api, request_id)
    assert body["status"] == "succeeded", body
    assert body["attempts"] == 3
    assert body["result"]["output"] == 3
    assert [(e["attempt"], e["type"]) for e in body["errors"]] == [
        (1, "RuntimeError"),
        (2, "RuntimeError"),
    ]


def test_exhausted_retries_dead_letter_then_replay_after_a_fix(
    api: httpx.Client, daemon: DaemonProcess, tmp_path: Path
) -> None:
    retry = {"handler_error": {"attempts": 2, "backoff_s": 0.05}}
    _create(api, "sink", SINK)
    _create(api, "broken", BROKEN, async_retry=retry, on_failure="function:sink")
    sink = tmp_path / "sink.jsonl"
    request_id = _submit(api, "broken", {"sink": str(sink)})
    body = _finished(api, request_id)
    assert body["status"] == "dead"
    assert body["attempts"] == 2
    assert [e["type"] for e in body["errors"]] == ["ValueError", "ValueError"]
    stats = api.get("/stats").json()
    assert stats["async"]["dead"] == 1
    assert stats["this_daemon"]["async_retries"] == 1
    assert stats["this_daemon"]["async_dead_lettered"] == 1
    listed = api.get("/dead-letters", params={"function": "broken"}).json()
    assert [item["request_id"] for item in listed["items"]] == [request_id]
    # The on-failure destination got Lambda's record shape.
    deadline = time.monotonic() + 30
    while not sink.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    record = httpx.Response(200, content=sink.read_text().splitlines()[0]).json()
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["requestId"] == request_id
    assert record["responseContext"]["functionError"] == "ValueError"
    # The CLI sees it too.
    shown = daemon.cli("--json", "dlq", "list")
    assert shown.returncode == 0, shown.stderr
    assert request_id in shown.stdout
    api.patch("/functions/broken", json={"code": FIXED}).raise_for_status()
    assert api.post("/dead-letters/replay", json={"ids": [request_id]}).json() == {"replayed": 1}
    replayed = _finished(api, request_id)
    assert replayed["status"] == "succeeded"
    assert replayed["result"]["output"] == "fixed"
    assert len(replayed["errors"]) == 2  # the history stays
    assert api.get("/dead-letters").json()["items"] == []
    queue = api.get("/stats").json()["async"]
    assert queue["dead"] == 0
    assert queue["persisted"] is True


def test_the_cli_replays_and_purges_dead_letters(api: httpx.Client, daemon: DaemonProcess) -> None:
    retry = {"handler_error": {"attempts": 1}}
    _create(api, "doomed", BROKEN, async_retry=retry)
    first, second = _submit(api, "doomed", 1), _submit(api, "doomed", 2)
    assert _finished(api, first)["status"] == _finished(api, second)["status"] == "dead"
    api.patch("/functions/doomed", json={"code": FIXED}).raise_for_status()

    replayed = daemon.cli("dlq", "replay", first)
    assert replayed.returncode == 0, replayed.stderr
    assert "1" in replayed.stdout
    assert _finished(api, first)["status"] == "succeeded"
    purged = daemon.cli("--json", "dlq", "purge", "--function", "doomed", "--yes")
    assert purged.returncode == 0, purged.stderr
    assert json.loads(purged.stdout) == {"purged": 1}
    assert api.get("/dead-letters", params={"function": "doomed"}).json()["items"] == []


def test_on_success_destination(api: httpx.Client, tmp_path: Path) -> None:
    _create(api, "sink", SINK)
    _create(api, "echo", ECHO, on_success="function:sink")
    sink = tmp_path / "ok.jsonl"
    request_id = _submit(api, "echo", {"sink": str(sink)})
    assert _finished(api, request_id)["status"] == "succeeded"
    deadline = time.monotonic() + 30
    while not sink.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    record = httpx.Response(200, content=sink.read_text()).json()
    assert record["requestContext"]["condition"] == "Success"
    assert record["responsePayload"]["got"] == {"sink": str(sink)}


def test_refusals_at_submit(api: httpx.Client) -> None:
    _create(api, "echo", ECHO)
    too_big = api.post(
        "/functions/echo/invoke",
        content=b'"' + b"x" * (7 * 1024 * 1024) + b'"',
        headers=EVENT,
    )
    assert too_big.status_code == 413
    assert too_big.json()["error"]["code"] == "Request.PayloadTooLarge"
    missing = api.post("/functions/nope/invoke", json={}, headers=EVENT)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "Function.NotFound"
    wrong = api.post("/functions/echo/invoke", json={}, headers={"X-Nova-Invocation-Type": "Later"})
    assert wrong.status_code == 422
    assert wrong.json()["error"]["code"] == "Request.Invalid"
    assert api.get("/invocations/unknown").json()["error"]["code"] == "Invocation.NotFound"
    bad_policy = api.patch("/functions/echo", json={"async_retry": {"sometimes": {"attempts": 2}}})
    assert bad_policy.status_code == 422
    assert "async_retry" in bad_policy.json()["error"]["message"]
    bad_target = api.patch("/functions/echo", json={"on_failure": "sqs:queue"})
    assert bad_target.status_code == 422
    empty = api.post("/dead-letters/purge", json={})
    assert empty.status_code == 422
    taken = _submit(api, "echo", {}, **{"X-Nova-Request-Id": "fixed-id-1"})
    again = api.post(
        "/functions/echo/invoke", json={}, headers={**EVENT, "X-Nova-Request-Id": taken}
    )
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "Invocation.AlreadyExists"
