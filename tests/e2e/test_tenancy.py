"""Environments on a real daemon: the same function name lives in two environments; what one
environment holds (functions, versions, secrets, keys, invocation logs, audit entries) is
invisible from another, whether the request picks its environment with the header, the CLI's
--env or a key bound to one."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from tests.e2e.daemon_process import DaemonProcess

PROD = "acme/shop/prod"
CODE = """import os

def handler(event, context):
    return {"answer": os.environ["ANSWER"], "token": os.environ.get("TOKEN", "")}
"""
IN_PROD = {"X-Nova-Environment": PROD}


def _function(answer: str) -> dict[str, Any]:
    return {
        "name": "hello",
        "runtime": "python",
        "code": CODE,
        "env": {"ANSWER": answer, "TOKEN": "$SECRET:token"},
    }


def _code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


def _key(api: httpx.Client, name: str, role: str, **fields: Any) -> str:
    response = api.post("/keys", json={"name": name, "role": role, **fields})
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


def _eventually(probe: Callable[[], list[Any]]) -> list[Any]:
    """What ``probe`` returns once it is not empty (records and audit entries are written
    shortly after the answer)."""
    deadline = time.monotonic() + 15
    while not (found := probe()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return found


def _setup(api: httpx.Client) -> None:
    """``hello`` in the default environment and in acme/shop/prod, each with its own secret."""
    api.post("/environments", json={"environment": PROD}).raise_for_status()
    api.put("/secrets/token", json={"value": "default-token"}).raise_for_status()
    api.put("/secrets/token", json={"value": "prod-token"}, headers=IN_PROD).raise_for_status()
    api.post("/functions", json=_function("default")).raise_for_status()
    api.post("/functions", json=_function("prod"), headers=IN_PROD).raise_for_status()


def test_one_name_in_two_environments(daemon: DaemonProcess, api: httpx.Client) -> None:
    _setup(api)
    here = api.post("/functions/hello/invoke", json={}).raise_for_status().json()
    there = api.post("/functions/hello/invoke", json={}, headers=IN_PROD).raise_for_status()
    assert here["output"] == {"answer": "default", "token": "default-token"}
    assert there.json()["output"] == {"answer": "prod", "token": "prod-token"}

    shown = api.get("/functions/hello", headers=IN_PROD).raise_for_status().json()
    assert (shown["name"], shown["environment"]) == ("hello", PROD)
    listed = api.get("/functions", headers=IN_PROD).raise_for_status().json()["items"]
    assert [(f["name"], f["environment"]) for f in listed] == [("hello", PROD)]
    default = api.get("/functions").raise_for_status().json()["items"]
    assert {f["environment"] for f in default} == {"default/default/default"}

    # A version published in prod is prod's function's alone.
    api.post("/functions/hello/versions", json={}, headers=IN_PROD).raise_for_status()
    assert api.get("/functions/hello/versions").json()["items"] == []
    versions = api.get("/functions/hello/versions", headers=IN_PROD).json()["items"]
    assert [(v["function"], v["number"]) for v in versions] == [("hello", 1)]

    # Secrets and invocation records are listed per environment, under their bare names.
    secrets = api.get("/secrets", headers=IN_PROD).json()["items"]
    assert [s["name"] for s in secrets] == ["token"]
    logs = _eventually(lambda: api.get("/invocations", headers=IN_PROD).json()["items"])
    assert logs
    assert {log["function_name"] for log in logs} == {"hello"}
    assert {log["function_id"] for log in logs} == {shown["id"]}

    # Schedules and routes of prod's function are prod's: invisible from the default one.
    body = {"function": "hello", "expression": "@every 1h"}
    schedule = api.post("/schedules", json=body, headers=IN_PROD).raise_for_status().json()
    assert schedule["function"] == "hello"
    assert api.get("/schedules").json()["items"] == []
    assert api.get(f"/schedules/{schedule['id']}").status_code == 404
    assert api.delete(f"/schedules/{schedule['id']}").status_code == 404
    route = {"method": "post", "path_prefix": "/hooks/prod", "function": "hello"}
    added = api.post("/routes", json=route, headers=IN_PROD).raise_for_status().json()
    assert api.get("/routes").json()["items"] == []
    assert api.delete(f"/routes/{added['id']}").status_code == 404
    routed = httpx.post(f"{daemon.url}/hooks/prod", headers=api.headers, timeout=30)
    assert routed.json()["answer"] == "prod"
    api.delete(f"/routes/{added['id']}", headers=IN_PROD).raise_for_status()
    url = api.get("/functions/hello/url", headers=IN_PROD).raise_for_status().json()["url"]
    assert url == "/fn/acme.shop.prod.hello/"  # its full name: function URLs share one space
    assert httpx.post(daemon.url + url, headers=api.headers).json()["answer"] == "prod"
    api.delete(f"/schedules/{schedule['id']}", headers=IN_PROD).raise_for_status()

    # Deleting prod's function leaves the default one running.
    api.delete("/functions/hello", headers=IN_PROD).raise_for_status()
    assert api.post("/functions/hello/invoke", json={}).status_code == 200
    gone = api.post("/functions/hello/invoke", json={}, headers=IN_PROD)
    assert (gone.status_code, _code(gone)) == (404, "Function.NotFound")
    assert "acme" not in gone.json()["error"]["message"]  # bare names, even in errors


def test_a_key_bound_to_an_environment_sees_nothing_else(
    daemon: DaemonProcess, api: httpx.Client
) -> None:
    _setup(api)
    developer = _key(api, "prod-dev", "developer", environment=PROD)
    admin = _key(api, "prod-admin", "admin", environment=PROD)
    with (
        daemon.client(headers={"Authorization": f"Bearer {developer}"}) as as_dev,
        daemon.client(headers={"Authorization": f"Bearer {admin}"}) as as_admin,
    ):
        answer = as_dev.post("/functions/hello/invoke", json={}).raise_for_status().json()
        assert answer["output"]["answer"] == "prod"  # no header: the key's own environment
        names = [f["environment"] for f in as_dev.get("/functions").json()["items"]]
        assert names == [PROD]
        elsewhere = as_dev.get(
            "/functions", headers={"X-Nova-Environment": "default/default/default"}
        )
        assert (elsewhere.status_code, _code(elsewhere)) == (404, "Environment.NotFound")

        # Keys: a bound admin sees and manages only its environment's, and cannot mint wider.
        keys = as_admin.get("/keys").raise_for_status().json()["items"]
        assert sorted(k["name"] for k in keys) == ["prod-admin", "prod-dev"]
        assert {k["environment"] for k in keys} == {PROD}
        hidden = as_admin.get("/keys/admin")
        assert (hidden.status_code, _code(hidden)) == (404, "Key.NotFound")
        assert as_admin.delete("/keys/admin").status_code == 404
        wider = as_admin.post("/keys", json={"name": "x", "role": "viewer", "environment": "*"})
        assert (wider.status_code, _code(wider)) == (422, "Request.Invalid")
        other = as_admin.post(
            "/keys", json={"name": "y", "role": "viewer", "environment": "acme/shop/dev"}
        )
        assert (other.status_code, _code(other)) == (404, "Environment.NotFound")
        made = as_admin.post("/keys", json={"name": "prod-viewer", "role": "viewer"})
        assert made.json()["environment"] == PROD  # a bound key's keys are its environment's

        # Audit: the bound admin reads its environment's entries only.
        as_dev.put("/secrets/only-prod", json={"value": "v"}).raise_for_status()
        entries = _eventually(
            lambda: [
                e
                for e in as_admin.get("/audit").raise_for_status().json()["items"]
                if e["action"] == "secret.set" and e["target"] == "only-prod"
            ]
        )
        assert entries
        everywhere = as_admin.get("/audit").json()["items"]
        assert {e["environment"] for e in everywhere} == {PROD}
        everything = as_admin.get("/audit", params={"environment": "*"})
        assert everything.status_code == 422

        # Views of the whole daemon would name other environments' functions.
        for path in ("/stats", "/metrics", "/snapshots", "/dead-letters"):
            hidden_view = as_admin.get(path)
            assert (hidden_view.status_code, _code(hidden_view)) == (404, "Route.NotFound"), path

    # The admin key of every environment sees both, and filters.
    all_entries = api.get("/audit").json()["items"]
    assert {e["environment"] for e in all_entries} == {PROD, "default/default/default"}
    prod_only = api.get("/audit", params={"environment": PROD}).json()["items"]
    assert {e["environment"] for e in prod_only} == {PROD}
    default_secrets = [s["name"] for s in api.get("/secrets").json()["items"]]
    assert default_secrets == ["token"]  # only-prod is prod's


def test_cli_env_option(daemon: DaemonProcess, api: httpx.Client) -> None:
    _setup(api)
    invoked = daemon.cli("--env", PROD, "invoke", "hello")
    assert invoked.returncode == 0, invoked.stderr
    assert json.loads(invoked.stdout)["answer"] == "prod"
    listed = daemon.cli("--json", "--env", PROD, "fn", "list")
    assert [f["environment"] for f in json.loads(listed.stdout)["items"]] == [PROD]
    created = daemon.cli("--env", PROD, "key", "create", "ci", "--role", "invoker")
    assert created.returncode == 0, created.stderr
    assert f"for environment {PROD}" in created.stderr
    keys = daemon.cli("key", "list")
    assert PROD in keys.stdout
    assert "*" in keys.stdout
    unknown = daemon.cli("--env", "acme/shop/nope", "fn", "list")
    assert unknown.returncode != 0
    assert "Environment.NotFound" in unknown.stderr or "does not exist" in unknown.stderr


def test_environments_lifecycle(daemon: DaemonProcess, api: httpx.Client) -> None:
    _setup(api)
    made = daemon.cli("env", "create", "acme/shop/dev", "--set", "max_functions=3")
    assert made.returncode == 0, made.stderr
    assert "created acme/shop/dev: max_functions=3" in made.stdout
    listed = api.get("/environments").raise_for_status().json()["items"]
    assert [e["environment"] for e in listed] == [
        "acme/shop/dev",
        PROD,
        "default/default/default",
    ]
    again = api.post("/environments", json={"environment": "acme/shop/dev"})
    assert (again.status_code, _code(again)) == (409, "Environment.AlreadyExists")
    bad = api.post("/environments", json={"environment": "Acme/shop"})
    assert (bad.status_code, _code(bad)) == (422, "Request.Invalid")
    for header in ("../../etc", "acme/shop", "a/b/c/d", "Acme/Shop/Prod", "acme/shop/p%20", "-"):
        odd = api.get("/functions", headers={"X-Nova-Environment": header})
        assert (odd.status_code, _code(odd)) == (422, "Request.Invalid"), header
        assert "organisation/project/environment" in odd.json()["error"]["message"]

    quota = daemon.cli(
        "env", "quota", "acme/shop/dev", "--set", "max_memory_mb=512", "--set", "max_functions=none"
    )
    assert quota.returncode == 0, quota.stderr
    shown = api.get("/environments/acme/shop/dev").raise_for_status().json()
    assert shown["quotas"] == {"max_memory_mb": 512}
    unknown = api.patch("/environments/acme/shop/dev/quotas", json={"max_things": 3})
    assert (unknown.status_code, _code(unknown)) == (422, "Request.Invalid")
    negative = api.patch("/environments/acme/shop/dev/quotas", json={"max_functions": -1})
    assert (negative.status_code, _code(negative)) == (422, "Request.Invalid")

    full = api.delete(f"/environments/{PROD}")
    assert (full.status_code, _code(full)) == (409, "Environment.NotEmpty")
    assert "1 function(s) and 1 secret(s)" in full.json()["error"]["message"]
    default = api.delete("/environments/default/default/default")
    assert (default.status_code, _code(default)) == (409, "Environment.Protected")

    bound = _key(api, "prod-admin", "admin", environment=PROD)
    with daemon.client(headers={"Authorization": f"Bearer {bound}"}) as as_bound:
        own = as_bound.get("/environments").json()["items"]
        assert [e["environment"] for e in own] == [PROD]
        assert as_bound.get("/environments/acme/shop/dev").status_code == 404
        assert as_bound.post("/environments", json={"environment": "acme/x/y"}).status_code == 404
        lift = as_bound.patch(f"/environments/{PROD}/quotas", json={"max_functions": None})
        assert lift.status_code == 404  # quotas are the operator's, not the tenant's

    removed = daemon.cli("env", "delete", "acme/shop/dev")
    assert removed.returncode == 0, removed.stderr
    gone = api.get("/functions", headers={"X-Nova-Environment": "acme/shop/dev"})
    assert (gone.status_code, _code(gone)) == (404, "Environment.NotFound")
    wanted = {"environment.create", "environment.quotas", "environment.delete"}

    def recorded() -> list[str]:
        entries = api.get("/audit", params={"action": "environment."}).json()["items"]
        actions = [e["action"] for e in entries]
        return actions if wanted <= set(actions) else []

    assert _eventually(recorded)


SLOW = """import time

def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return {"slept": event.get("sleep", 0)}
"""


def test_quotas_refuse_with_the_quota_named(daemon: DaemonProcess, api: httpx.Client) -> None:
    body = {"environment": PROD, "quotas": {"max_functions": 1, "max_memory_mb": 256}}
    api.post("/environments", json=body).raise_for_status()
    slow = {"name": "slow", "runtime": "python", "code": SLOW, "memory_mb": 128}
    api.post("/functions", json=slow, headers=IN_PROD).raise_for_status()

    second = api.post("/functions", json={**slow, "name": "other"}, headers=IN_PROD)
    assert (second.status_code, _code(second)) == (409, "Quota.Exceeded")
    assert "max_functions" in second.json()["error"]["message"]
    assert api.post("/functions", json={**slow, "name": "other"}).status_code == 201  # default
    bigger = api.patch("/functions/slow", json={"memory_mb": 512}, headers=IN_PROD)
    assert (bigger.status_code, _code(bigger)) == (409, "Quota.Exceeded")
    assert "max_memory_mb" in bigger.json()["error"]["message"]

    size = api.get("/functions/slow", headers=IN_PROD).json()["code_size"]
    api.patch(
        f"/environments/{PROD}/quotas", json={"max_code_bytes": size + 10, "max_functions": None}
    ).raise_for_status()
    grown = api.patch("/functions/slow", json={"code": SLOW + "# " + "x" * 64}, headers=IN_PROD)
    assert (grown.status_code, _code(grown)) == (409, "Quota.Exceeded")
    assert "max_code_bytes" in grown.json()["error"]["message"]
    usage = api.get(f"/environments/{PROD}").json()["usage"]
    assert usage == {"functions": 1, "code_bytes": size, "running": 0}
    shown = daemon.cli("env", "show", PROD)
    assert shown.returncode == 0, shown.stderr
    rows = {line.split()[0]: line.split()[1:] for line in shown.stdout.splitlines() if line}
    assert rows["max_code_bytes"] == [str(size + 10), str(size)], shown.stdout
    assert rows["max_memory_mb"] == ["256", "-"], shown.stdout

    api.patch(f"/environments/{PROD}/quotas", json={"max_concurrency": 1}).raise_for_status()
    api.post("/functions/slow/invoke", json={}, headers=IN_PROD).raise_for_status()  # warm
    time.sleep(2.5)  # the daemon reads quotas every 2 s
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(api.post, "/functions/slow/invoke", json={"sleep": 3}, headers=IN_PROD)
        time.sleep(1)
        refused = api.post("/functions/slow/invoke", json={}, headers=IN_PROD)
        running = api.get(f"/environments/{PROD}").json()["usage"]["running"]
        assert first.result().status_code == 200
    assert (refused.status_code, _code(refused)) == (429, "Quota.ConcurrencyExceeded")
    assert refused.headers["retry-after"]
    assert running == 1
    assert api.post("/functions/other/invoke", json={}).status_code == 200  # default: no quota
