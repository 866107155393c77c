"""Bad input gets a stable code and a message that names the problem; nothing half-made."""

from __future__ import annotations

import httpx
import pytest

HELLO = "def handler(event, context):\n    return event\n"


def _error(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()["error"]
    return response.status_code, body["code"], body["message"]


@pytest.mark.parametrize(
    "name", ["Upper", "../etc", "a/b", "-lead", "x" * 64, "", "a b", "a.b", "ünï"]
)
def test_bad_names_are_refused(api: httpx.Client, name: str) -> None:
    status, code, message = _error(
        api.post("/functions", json={"name": name, "runtime": "python", "code": HELLO})
    )
    assert (status, code) == (422, "Request.Invalid")
    assert "name" in message
    assert api.get("/functions").json()["items"] == []


def test_bad_names_in_paths_are_refused(api: httpx.Client) -> None:
    status, code, _ = _error(api.post("/functions/Not_Valid/invoke", json={}))
    assert (status, code) == (422, "Request.Invalid")
    assert api.get("/functions/..%2Fetc").status_code in (404, 422)


def test_duplicate_unknown_and_invalid_fields(api: httpx.Client) -> None:
    assert (
        api.post("/functions", json={"name": "dup", "runtime": "python", "code": HELLO}).status_code
        == 201
    )
    assert _error(api.post("/functions", json={"name": "dup", "runtime": "python", "code": HELLO}))[
        :2
    ] == (409, "Function.AlreadyExists")
    assert _error(api.get("/functions/nope"))[:2] == (404, "Function.NotFound")
    assert _error(api.patch("/functions/nope", json={"memory_mb": 256}))[:2] == (
        404,
        "Function.NotFound",
    )
    assert _error(api.delete("/functions/nope"))[:2] == (404, "Function.NotFound")
    status, code, message = _error(api.patch("/functions/dup", json={"memory_mb": 1}))
    assert (status, code) == (422, "Request.Invalid")
    assert message.startswith("memory_mb")
    status, _, message = _error(
        api.post("/functions", json={"name": "x", "runtime": "python", "code": HELLO, "colour": 1})
    )
    assert status == 422
    assert "colour" in message
    status, _, message = _error(
        api.post("/functions", json={"name": "x", "runtime": "cobol", "code": HELLO})
    )
    assert status == 422
    assert "cobol" in message
    assert (
        _error(api.post("/functions", json={"name": "x", "runtime": "python"}))[0] == 422
    )  # no code


def test_malformed_json_is_400(api: httpx.Client) -> None:
    headers = {"content-type": "application/json"}
    assert _error(api.post("/functions", content=b"{nope", headers=headers))[:2] == (
        400,
        "Request.MalformedJson",
    )
    api.post(
        "/functions", json={"name": "js", "runtime": "python", "code": HELLO}
    ).raise_for_status()
    assert _error(api.post("/functions/js/invoke", content=b"{nope"))[:2] == (
        400,
        "Request.MalformedJson",
    )


def test_oversize_event_is_413(api: httpx.Client) -> None:
    api.post(
        "/functions", json={"name": "big", "runtime": "python", "code": HELLO}
    ).raise_for_status()
    payload = b'"' + b"x" * (6 * 1024 * 1024) + b'"'
    status, code, message = _error(api.post("/functions/big/invoke", content=payload))
    assert (status, code) == (413, "Request.PayloadTooLarge")
    assert "limit" in message
    # Chunked bodies have no Content-Length: the limit is enforced while reading.
    chunks = (payload[i : i + 65536] for i in range(0, len(payload), 65536))
    assert api.post("/functions/big/invoke", content=chunks).status_code == 413
    assert api.post("/functions/big/invoke", json={"ok": True}).json()["output"] == {"ok": True}


def test_handler_exceptions_are_results(api: httpx.Client) -> None:
    code = "def handler(event, context):\n    raise KeyError('missing thing')\n"
    api.post(
        "/functions", json={"name": "boom", "runtime": "python", "code": code}
    ).raise_for_status()
    response = api.post("/functions/boom/invoke", json={})
    assert response.status_code == 200
    error = response.json()["error"]
    assert error["type"] == "KeyError"
    assert "missing thing" in error["message"]
    assert any("handler.py" in line for line in error["stack"])
    assert not any("bootstrap" in line for line in error["stack"])


def test_timeout_kills_and_the_next_call_works(api: httpx.Client) -> None:
    timeout_kills_and_the_next_call_works(api, 0.5)


def timeout_kills_and_the_next_call_works(api: httpx.Client, timeout_s: float) -> None:
    """``timeout_s``: room for the next call's fresh instance to run the handler (a microVM
    under software emulation on a loaded host needs more than half a second)."""
    code = "import time\ndef handler(event, context):\n    time.sleep(event.get('sleep', 0))\n    return 'ok'\n"
    body = {"name": "slow", "runtime": "python", "code": code, "timeout_s": timeout_s}
    api.post("/functions", json=body).raise_for_status()
    result = api.post("/functions/slow/invoke", json={"sleep": 30}).json()
    assert result["error"]["type"] == "Function.Timeout"
    again = api.post("/functions/slow/invoke", json={}).json()
    assert again.get("output") == "ok", again
    assert again["cold_start"] is True  # the timed-out instance was killed


def test_unknown_route_is_json(api: httpx.Client) -> None:
    response = api.get("/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "Route.NotFound"
