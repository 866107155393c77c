"""HTTP triggers end to end: a function URL round-trips method, path, query, headers, cookies
and a binary body; statusCode answers and plain values; function errors; custom routes with
the longest prefix winning, conflicts, reserved paths; webhook signatures; the body limit."""

from __future__ import annotations

import base64
import hashlib
import hmac
import socket
import time
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.daemon_process import DaemonProcess

# Returns the event it received, so the test sees exactly what a function sees.
MIRROR = "def handler(event, context):\n    return event\n"
# Answers with the status, headers, cookies and (base64) body the request's query asks for.
ANSWER = """
import base64
def handler(event, context):
    q = event.get('queryStringParameters') or {}
    if q.get('raw'):
        return {'statusCode': 200, 'isBase64Encoded': True,
                'headers': {'content-type': 'application/octet-stream'},
                'body': event['body'] if event['isBase64Encoded']
                else base64.b64encode(event.get('body', '').encode()).decode()}
    if q.get('plain'):
        return [1, 2, 3]
    if q.get('bad'):
        return {'statusCode': 'teapot'}
    if q.get('fail'):
        raise ValueError('no ' + q['fail'])
    return {'statusCode': 201, 'headers': {'x-answer': 'yes', 'content-type': 'text/plain'},
            'cookies': ['a=1; Path=/', 'b=2'], 'body': 'made ' + event['rawPath']}
"""


def _create(api: httpx.Client, name: str, code: str) -> None:
    api.post(
        "/functions", json={"name": name, "runtime": "python", "code": code}
    ).raise_for_status()


def test_function_url_round_trips_the_request(api: httpx.Client) -> None:
    _create(api, "mirror", MIRROR)
    binary = bytes(range(256)) * 4
    response = api.request(
        "PUT",
        "/fn/mirror/a/b%20c?x=1&x=2&empty=",
        content=binary,
        headers={"content-type": "application/octet-stream", "x-custom": "v", "cookie": "s=1; t=2"},
    )
    assert response.status_code == 200, response.text
    event: dict[str, Any] = response.json()
    assert event["version"] == "2.0"
    assert event["routeKey"] == "$default"
    assert event["rawPath"] == "/a/b c"
    assert event["rawQueryString"] == "x=1&x=2&empty="
    assert event["queryStringParameters"] == {"x": "1,2", "empty": ""}
    assert event["headers"]["x-custom"] == "v"
    assert "cookie" not in event["headers"]
    assert event["cookies"] == ["s=1", "t=2"]
    http = event["requestContext"]["http"]
    assert (http["method"], http["path"], http["sourceIp"]) == ("PUT", "/a/b c", "127.0.0.1")
    assert http["userAgent"].startswith("python-httpx")
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == binary
    assert event["requestContext"]["requestId"] == response.headers["x-nova-request-id"]
    text = api.post("/fn/mirror", json={"k": "é"}).json()
    assert (text["rawPath"], text["body"], text["isBase64Encoded"]) == ("/", '{"k":"é"}', False)
    assert "body" not in api.get("/fn/mirror/").json()


def test_function_url_turns_answers_into_responses(api: httpx.Client) -> None:
    _create(api, "answer", ANSWER)
    made = api.get("/fn/answer/x/y")
    assert made.status_code == 201
    assert made.text == "made /x/y"
    assert made.headers["content-type"] == "text/plain"
    assert made.headers["x-answer"] == "yes"
    assert made.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2"]
    binary = bytes(range(256))
    raw = api.post("/fn/answer?raw=1", content=binary)
    assert raw.content == binary
    plain = api.get("/fn/answer?plain=1")
    assert (plain.status_code, plain.json()) == (200, [1, 2, 3])
    assert plain.headers["content-type"] == "application/json"
    failed = api.get("/fn/answer?fail=luck")
    assert failed.status_code == 502
    error = failed.json()["error"]
    assert error["code"] == "Trigger.FunctionError"
    assert error["type"] == "ValueError"
    assert "no luck" in error["message"]
    bad = api.get("/fn/answer?bad=1")
    assert bad.status_code == 502
    assert bad.json()["error"]["code"] == "Trigger.InvalidResponse"
    missing = api.get("/fn/nothing-here/")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "Function.NotFound")
    invalid = api.get("/fn/Bad_Name/")
    assert invalid.status_code == 422


def test_function_url_takes_a_qualifier(api: httpx.Client) -> None:
    _create(api, "answer", ANSWER)
    api.post("/functions/answer/versions", json={}).raise_for_status()
    api.put("/functions/answer/aliases/live", json={"version": 1}).raise_for_status()
    assert api.get("/fn/answer:live/q").text == "made /q"
    assert api.get("/fn/answer:1/q").text == "made /q"
    assert api.get("/fn/answer:nope/q").status_code == 404


def test_routes_longest_prefix_conflicts_and_reserved_paths(daemon: DaemonProcess) -> None:
    with daemon.client() as api:
        _create(api, "mirror", MIRROR)
        _create(api, "answer", ANSWER)
        short = api.post(
            "/routes", json={"path_prefix": "/hooks", "function": "mirror", "auth": "none"}
        )
        assert short.status_code == 201, short.text
        assert short.json()["method"] == "ANY"
        long = {"method": "post", "path_prefix": "/hooks/deep", "function": "answer"}
        assert api.post("/routes", json=long).status_code == 201
        again = api.post("/routes", json=long)
        assert (again.status_code, again.json()["error"]["code"]) == (409, "Route.Conflict")
        reserved = api.post("/routes", json={"path_prefix": "/functions/x", "function": "mirror"})
        assert reserved.status_code == 422
        assert "Nova's own paths" in reserved.json()["error"]["message"]
        assert (
            api.post("/routes", json={"path_prefix": "/", "function": "mirror"}).status_code == 422
        )
        assert (
            api.post("/routes", json={"path_prefix": "/z", "function": "nope"}).status_code == 404
        )

        assert api.post("/hooks/deep/x").text == "made /hooks/deep/x"  # the longer prefix
        assert api.get("/hooks/deep/x").json()["rawPath"] == "/hooks/deep/x"  # GET: only ANY
        assert api.get("/hooks/deeper").json()["routeKey"] == "ANY /hooks"  # segment boundary
        assert api.get("/hooksy").status_code == 404
        assert api.get("/functions").status_code == 200  # the API is not shadowed

        listed = daemon.cli("route", "list")
        assert listed.returncode == 0, listed.stderr
        assert "/hooks/deep" in listed.stdout
        route_id = short.json()["id"]
        deleted = daemon.cli("route", "delete", route_id)
        assert deleted.returncode == 0, deleted.stderr
        assert api.get("/hooks/x").status_code == 404
        added = daemon.cli("route", "add", "/api2", "mirror", "--method", "GET", "--auth", "none")
        assert added.returncode == 0, added.stderr
        assert api.get("/api2/v").json()["rawPath"] == "/api2/v"
        not_allowed = api.post("/api2/v")
        assert (not_allowed.status_code, not_allowed.json()["error"]["code"]) == (
            405,
            "Route.MethodNotAllowed",
        )


def _signed(secret: bytes, body: bytes, timestamp: str | None = None) -> str:
    message = body if timestamp is None else timestamp.encode() + b"." + body
    return "sha256=" + hmac.new(secret, message, hashlib.sha256).hexdigest()


def test_webhook_signatures(daemon: DaemonProcess) -> None:
    with daemon.client() as api:
        _check_signatures(daemon, api)


def _check_signatures(daemon: DaemonProcess, api: httpx.Client) -> None:
    _create(api, "mirror", MIRROR)
    short = {"path_prefix": "/h", "function": "mirror", "signature": {"secret": "short"}}
    refused = api.post("/routes", json=short)
    assert refused.status_code == 422
    assert refused.json()["error"]["message"].startswith("signature.secret:")
    hook = {
        "path_prefix": "/hooks/github",
        "function": "mirror",
        "auth": "none",
        "signature": {"secret": "s3cret-value", "header": "X-Hub-Signature-256"},
    }
    created = api.post("/routes", json=hook)
    assert created.status_code == 201, created.text
    signature = created.json()["signature"]
    assert signature["secret"].startswith("$SECRET:nova-hook-")  # sealed, never shown
    body = b'{"action":"opened"}'
    good = {"x-hub-signature-256": _signed(b"s3cret-value", body)}
    assert api.post("/hooks/github", content=body, headers=good).status_code == 200
    for headers in ({}, {"x-hub-signature-256": _signed(b"wrong", body)}):
        refused = api.post("/hooks/github", content=body, headers=headers)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "Trigger.InvalidSignature"
    tampered = api.post("/hooks/github", content=body + b" ", headers=good)
    assert tampered.status_code == 401
    generated = signature["secret"].removeprefix("$SECRET:")
    assert generated in [item["name"] for item in api.get("/secrets").json()["items"]]
    api.delete(f"/routes/{created.json()['id']}").raise_for_status()
    assert generated not in [item["name"] for item in api.get("/secrets").json()["items"]]

    # A function URL with a $SECRET reference and a timestamp within a tolerance.
    api.put("/secrets/hook", json={"value": "another-secret"}).raise_for_status()
    setting = {
        "auth": "none",
        "signature": {"secret": "$SECRET:hook", "timestamp_header": "x-ts", "tolerance_s": 60},
    }
    put = api.put("/functions/mirror/url", json=setting)
    assert put.status_code == 200, put.text
    assert api.get("/functions/mirror/url").json()["auth"] == "none"
    shown = daemon.cli("route", "url", "mirror")
    assert shown.returncode == 0, shown.stderr
    assert f"{daemon.url}/fn/mirror/" in shown.stdout
    assert "hmac in x-signature-256" in shown.stdout
    now = str(int(time.time()))
    fresh = {"x-ts": now, "x-signature-256": _signed(b"another-secret", body, now)}
    assert api.post("/fn/mirror", content=body, headers=fresh).status_code == 200
    old = str(int(time.time()) - 600)
    stale = {"x-ts": old, "x-signature-256": _signed(b"another-secret", body, old)}
    assert api.post("/fn/mirror", content=body, headers=stale).status_code == 401


def test_body_over_the_limit_is_refused_before_the_function(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path / "data", env={"NOVA_DAEMON__MAX_PAYLOAD_BYTES": "1000"})
    daemon.start()
    try:
        with daemon.client() as api:
            _create(api, "mirror", MIRROR)
            big = api.post("/fn/mirror", content=b"x" * 1001)
            assert big.status_code == 413
            assert big.json()["error"]["code"] == "Request.PayloadTooLarge"
            # Refused from Content-Length alone: the body is never sent, the answer comes.
            with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as raw:
                raw.sendall(b"POST /fn/mirror HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
                assert raw.recv(100).startswith(b"HTTP/1.1 413")
            assert api.post("/fn/mirror", content=b"x" * 900).status_code == 200
            metrics = api.get("/metrics").text
            assert (
                'nova_http_trigger_requests_total{function="mirror",kind="url",status="413"} 2.0'
                in metrics
            )
    finally:
        daemon.stop()


def test_trigger_auth_platform_needs_an_invoke_key_and_none_is_open(
    daemon: DaemonProcess, api: httpx.Client
) -> None:
    _create(api, "guarded", MIRROR)
    _create(api, "other", MIRROR)
    keys = {}
    for name, role, scope in [
        ("caller", "invoker", "guarded"),
        ("outsider", "invoker", "other"),
        ("watcher", "viewer", "*"),
    ]:
        made = api.post("/keys", json={"name": name, "role": role, "scope": scope})
        assert made.status_code == 201, made.text
        keys[name] = made.json()["key"]

    with httpx.Client(base_url=daemon.url, timeout=60) as anonymous:
        refused = anonymous.get("/fn/guarded/x")  # auth: platform is the default
        assert refused.status_code == 401, refused.text
        assert refused.json()["error"]["code"] == "Auth.MissingCredentials"
        assert anonymous.get("/fn/guarded/x", headers={"X-API-Key": "nope"}).status_code == 401
        as_watcher = {"Authorization": f"Bearer {keys['watcher']}"}
        assert anonymous.get("/fn/guarded/x", headers=as_watcher).status_code == 403
        as_outsider = {"Authorization": f"Bearer {keys['outsider']}"}
        hidden = anonymous.get("/fn/guarded/x", headers=as_outsider)
        assert hidden.status_code == 404  # outside the key's scope: as if it did not exist
        assert hidden.json()["error"]["code"] == "Function.NotFound"

        as_caller = {"X-API-Key": keys["caller"], "x-kept": "yes"}
        answered = anonymous.get("/fn/guarded/x", headers=as_caller)
        assert answered.status_code == 200, answered.text
        seen = answered.json()["headers"]
        assert seen["x-kept"] == "yes"
        assert "x-api-key" not in seen  # the caller's credential never reaches the function
        assert "authorization" not in seen

        opened = api.put("/functions/other/url", json={"auth": "none"})
        assert opened.status_code == 200, opened.text
        assert anonymous.get("/fn/other/x").status_code == 200
        route = api.post("/routes", json={"path_prefix": "/hooks", "function": "guarded"})
        assert route.status_code == 201, route.text
        assert anonymous.post("/hooks/a", content=b"{}").status_code == 401
        assert anonymous.post("/hooks/a", content=b"{}", headers=as_caller).status_code == 200

    deadline = time.monotonic() + 10  # refusals reach the audit log in batches
    while True:
        refusals = api.get("/audit", params={"outcome": "denied"}).json()["items"]
        refused = [entry for entry in refusals if "/fn/guarded" in entry["target"]]
        if len(refused) >= 4 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert sorted(entry["status"] for entry in refused) == [401, 401, 403, 404]
