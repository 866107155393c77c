"""The audit log on a real daemon: every step of a scenario (changes by two keys, refusals) is
recorded with actor, action, target, outcome and address; filters work over HTTP and the CLI;
no secret value or key ever appears in it."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from tests.e2e.daemon_process import DaemonProcess

HANDLER = "def handler(event, context):\n    return 1\n"
SECRET_VALUE = "s3cr3t-value-that-must-not-leak"


def _audit(api: httpx.Client, count: int, **params: str) -> list[dict[str, Any]]:
    """The entries matching ``params`` once there are ``count`` (refusals are batched)."""
    deadline = time.monotonic() + 10
    while True:
        items: list[dict[str, Any]] = api.get("/audit", params=params).json()["items"]
        if len(items) >= count or time.monotonic() > deadline:
            return items
        time.sleep(0.2)


def test_the_audit_log_shows_every_step(daemon: DaemonProcess, api: httpx.Client) -> None:
    body = {"name": "shop", "runtime": "python", "code": HANDLER}
    api.post("/functions", json=body).raise_for_status()
    api.put("/secrets/db", json={"value": SECRET_VALUE}).raise_for_status()
    created = api.post("/keys", json={"name": "ci", "role": "viewer"}).json()
    ci = {"Authorization": f"Bearer {created['key']}"}
    assert api.post("/functions/shop/invoke", json={}).status_code == 200  # not a change
    assert api.post("/functions", json={**body, "name": "x"}, headers=ci).status_code == 403
    wrong = httpx.get(f"{daemon.url}/functions", headers={"X-API-Key": "nova_NKBAD_nope"})
    assert wrong.status_code == 401
    assert api.post("/functions", json=body).status_code == 409  # a failed change
    api.patch("/functions/shop", json={"memory_mb": 256}).raise_for_status()
    api.delete("/functions/shop").raise_for_status()

    entries = _audit(api, 8)
    steps = [(e["actor"]["name"], e["action"], e["target"], e["outcome"]) for e in entries]
    # Changes are written as they finish, refusals a moment later in a batch: compare as sets.
    assert sorted(steps) == sorted(
        [
            ("admin", "function.delete", "shop", "ok"),
            ("admin", "function.update", "shop", "ok"),
            ("admin", "function.create", "shop", "Function.AlreadyExists"),
            ("anonymous", "auth.refused", "GET /functions", "Auth.InvalidKey"),
            ("ci", "function.create", "POST /functions", "Auth.Forbidden"),
            ("admin", "key.create", "ci", "ok"),
            ("admin", "secret.set", "db", "ok"),
            ("admin", "function.create", "shop", "ok"),
        ]
    )
    changes = [step for step in steps if step[3] in ("ok", "Function.AlreadyExists")]
    assert [step[1] for step in changes] == [
        "function.delete",
        "function.update",
        "function.create",
        "key.create",
        "secret.set",
        "function.create",
    ]
    by_action = {(e["action"], e["outcome"]): e for e in entries}
    assert by_action[("function.create", "ok")]["status"] == 201
    assert by_action[("function.create", "Function.AlreadyExists")]["status"] == 409
    assert by_action[("function.create", "Auth.Forbidden")]["actor"]["name"] == "ci"
    assert by_action[("auth.refused", "Auth.InvalidKey")]["status"] == 401
    assert all(e["source_ip"] == "127.0.0.1" for e in entries)
    assert all(
        e["actor"]["id"].startswith("NK") for e in entries if e["actor"]["name"] != "anonymous"
    )
    text = json.dumps(entries)
    assert SECRET_VALUE not in text
    assert created["key"] not in text
    assert daemon.api_key is not None
    assert daemon.api_key not in text

    assert len(_audit(api, 2, actor="ci")) == 1
    assert {e["action"] for e in _audit(api, 4, action="function.")} == {
        "function.create",
        "function.update",
        "function.delete",
    }
    denied = _audit(api, 3, outcome="denied")
    assert {e["outcome"] for e in denied} == {
        "Auth.Forbidden",
        "Auth.InvalidKey",
        "Function.AlreadyExists",
    }
    cli = daemon.cli("audit", "--action", "key.", "--since", "1h")
    assert cli.returncode == 0, cli.stderr
    assert "key.create" in cli.stdout
    assert "function.create" not in cli.stdout
    # A viewer may not read the audit log.
    assert api.get("/audit", headers=ci).status_code == 403
