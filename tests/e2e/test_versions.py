"""Versions, aliases, weighted routing and canary rollback over HTTP against a real daemon."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.daemon_process import DaemonProcess

ANSWER = "def handler(event, context):\n    return {}\n"
# Fails on 30 % of the events (those whose n ends in 0, 1 or 2).
FLAKY = (
    "def handler(event, context):\n"
    "    if event.get('n', 0) % 10 < 3:\n"
    "        raise ValueError('flaky')\n"
    "    return 'v2'\n"
)


def _code(answer: str) -> str:
    return ANSWER.replace("{}", repr(answer))


def _publish(api: httpx.Client, name: str, code: str) -> int:
    api.patch(f"/functions/{name}", json={"code": code}).raise_for_status()
    response = api.post(f"/functions/{name}/versions", json={})
    response.raise_for_status()
    return int(response.json()["number"])


def _versions_story(api: httpx.Client) -> None:
    """v1 and v2 published, $LATEST moved on to a third answer."""
    api.post(
        "/functions", json={"name": "shop", "runtime": "python", "code": _code("v1")}
    ).raise_for_status()
    first = api.post("/functions/shop/versions", json={"description": "first"})
    assert first.status_code == 201
    assert first.json()["number"] == 1
    again = api.post("/functions/shop/versions", json={})
    assert (again.status_code, again.json()["number"]) == (200, 1)  # unchanged: the same one
    assert _publish(api, "shop", _code("v2")) == 2
    api.patch("/functions/shop", json={"code": _code("latest")}).raise_for_status()


def test_versions_are_immutable_and_each_runs_its_own_code(api: httpx.Client) -> None:
    _versions_story(api)
    for qualifier, answer, version in (
        (":1", "v1", "1"),
        (":2", "v2", "2"),
        ("", "latest", "$LATEST"),
        (":$LATEST", "latest", "$LATEST"),
    ):
        body = api.post(f"/functions/shop{qualifier}/invoke", json={}).json()
        assert (body["output"], body["version"]) == (answer, version)
    by_query = api.post("/functions/shop/invoke?qualifier=1", json={}).json()
    assert by_query["output"] == "v1"
    listed = api.get("/functions/shop/versions").json()["items"]
    assert [item["number"] for item in listed] == [1, 2]
    assert listed[0]["description"] == "first"
    assert api.get("/functions/shop/versions/2").json()["code_hash"] == listed[1]["code_hash"]
    instances = api.get("/functions/shop/instances").json()["items"]
    assert {item["version"] for item in instances} == {"1", "2", "$LATEST"}  # a pool each


def test_an_alias_splits_traffic_by_its_weights_and_rolls_back(api: httpx.Client) -> None:
    _versions_story(api)
    prod = api.put("/functions/shop/aliases/prod", json={"version": 1})
    assert prod.status_code == 200, prod.text
    canary = api.put(
        "/functions/shop/aliases/prod",
        json={
            "routing_config": {
                "weights": [{"version": 1, "weight": 90}, {"version": 2, "weight": 10}]
            }
        },
    )
    assert canary.json()["revision"] == 2

    def call(_: int) -> str:
        return str(api.post("/functions/shop:prod/invoke", json={}).json()["version"])

    with ThreadPoolExecutor(4) as pool:
        ran = Counter(pool.map(call, range(2000)))
    assert abs(ran["2"] / 2000 * 100 - 10) <= 2, ran
    assert ran["1"] + ran["2"] == 2000

    sticky = {
        api.post(
            "/functions/shop:prod/invoke", json={}, headers={"X-Nova-Routing-Key": "user-7"}
        ).json()["version"]
        for _ in range(30)
    }
    assert len(sticky) == 1

    rolled = api.post("/functions/shop/aliases/prod/rollback")
    assert rolled.json()["routing_config"] == {"weights": [{"version": 1, "weight": 100}]}
    history = api.get("/functions/shop/aliases/prod/history").json()["items"]
    assert [entry["reason"] for entry in history] == ["rollback", "manual", "manual"]
    assert {
        api.post("/functions/shop:prod/invoke", json={}).json()["version"] for _ in range(20)
    } == {"1"}

    refused = api.delete("/functions/shop/versions/1")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "Version.InUse"
    assert "prod" in refused.json()["error"]["message"]
    assert api.delete("/functions/shop/versions/2").status_code == 200
    assert api.post("/functions/shop:2/invoke", json={}).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {
                "routing_config": {
                    "weights": [{"version": 1, "weight": 60}, {"version": 2, "weight": 30}]
                }
            },
            "sum to 90",
        ),
        ({"version": 9}, "no version 9"),
        (
            {
                "routing_config": {
                    "weights": [
                        {"version": 1, "weight": 40},
                        {"version": 2, "weight": 30},
                        {"version": 1, "weight": 30},
                    ]
                }
            },
            "routing_config.weights",
        ),
        (
            {"routing_config": {"weights": [{"version": "$LATEST", "weight": 100}]}},
            "routing_config.weights.0.version",
        ),
        (
            {"version": 1, "routing_config": {"weights": [{"version": 1, "weight": 100}]}},
            "either version",
        ),
        ({}, "either version"),
        ({"version": 1, "canary": {"steps": [50, 10]}}, "canary.steps"),
    ],
)
def test_bad_aliases_are_refused_with_the_field_named(
    api: httpx.Client, body: dict[str, Any], field: str
) -> None:
    _versions_story(api)
    response = api.put("/functions/shop/aliases/prod", json=body)
    assert 400 <= response.status_code < 500, response.text
    assert field in response.json()["error"]["message"]
    assert api.get("/functions/shop/aliases").json()["items"] == []  # nothing stored


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("PUT", "/functions/shop/aliases/123", 422, "Request.Invalid"),
        ("PUT", "/functions/shop/aliases/$LATEST", 422, "Request.Invalid"),
        ("POST", "/functions/ghost:prod/invoke", 404, "Function.NotFound"),
        ("POST", "/functions/shop:nope/invoke", 404, "Alias.NotFound"),
        ("POST", "/functions/shop:7/invoke", 404, "Version.NotFound"),
        ("POST", "/functions/shop:Bad!/invoke", 422, "Request.Invalid"),
        ("POST", "/functions/shop:1/invoke?qualifier=2", 422, "Request.Invalid"),
        ("GET", "/functions/shop/versions/7", 404, "Version.NotFound"),
        ("POST", "/functions/ghost/versions", 404, "Function.NotFound"),
        ("POST", "/functions/shop/aliases/prod/rollback", 404, "Alias.NotFound"),
    ],
)
def test_bad_references_are_clear_4xx(
    api: httpx.Client, method: str, path: str, status: int, code: str
) -> None:
    _versions_story(api)
    body = {"version": 1} if method == "PUT" else {}
    response = api.request(method, path, json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def test_a_failing_canary_is_rolled_back_by_its_policy(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path / "data", env={"NOVA_CANARY__CHECK_INTERVAL_S": "0.5"}).start()
    try:
        with daemon.client() as api:
            api.post(
                "/functions", json={"name": "shop", "runtime": "python", "code": _code("v1")}
            ).raise_for_status()
            api.post("/functions/shop/versions", json={}).raise_for_status()
            _publish(api, "shop", FLAKY)
            policy = {
                "steps": [10, 50, 100],
                "interval_s": 3600,
                "window_s": 600,
                "min_samples": 20,
            }
            weights = [{"version": 1, "weight": 80}, {"version": 2, "weight": 20}]
            api.put(
                "/functions/shop/aliases/prod",
                json={"routing_config": {"weights": weights}, "canary": policy},
            ).raise_for_status()
            outcomes: Counter[tuple[str, bool]] = Counter()
            deadline = time.monotonic() + 60
            n = 0
            while time.monotonic() < deadline:
                body = api.post("/functions/shop:prod/invoke", json={"n": n}).json()
                outcomes[(body["version"], body["error"] is None)] += 1
                n += 1
                routing = api.get("/functions/shop/aliases/prod").json()["routing_config"]
                if routing == {"weights": [{"version": 1, "weight": 100}]}:
                    break
            assert routing == {"weights": [{"version": 1, "weight": 100}]}, outcomes
            assert outcomes[("1", False)] == 0  # prod kept answering on version 1
            after = [
                api.post("/functions/shop:prod/invoke", json={"n": i}).json() for i in range(30)
            ]
            assert {(body["version"], body["error"]) for body in after} == {("1", None)}
            decision = api.get("/functions/shop/aliases/prod/history").json()["items"][0]
            assert decision["reason"] == "automatic"
            assert decision["detail"]["verdict"] == "rollback"
            assert decision["detail"]["new"]["version"] == 2
            assert decision["detail"]["new"]["error_rate"] > 0.05
            status = daemon.cli("alias", "status", "shop", "prod")
            assert status.returncode == 0, status.stderr
            assert "rollback" in status.stdout
            assert "automatic" in status.stdout
    finally:
        daemon.stop()


def test_versions_and_aliases_survive_a_restart(tmp_path: Path, store_url: str) -> None:
    env = {"NOVA_DATABASE_URL": store_url}
    daemon = DaemonProcess(tmp_path / "data", env=env).start()
    with daemon.client() as api:
        _versions_story(api)
        api.put("/functions/shop/aliases/prod", json={"version": 2}).raise_for_status()
    daemon.stop()
    restarted = DaemonProcess(tmp_path / "data", env=env).start()
    try:
        with restarted.client() as api:
            assert api.post("/functions/shop:prod/invoke", json={}).json()["output"] == "v2"
            assert api.post("/functions/shop:1/invoke", json={}).json()["output"] == "v1"
            assert api.post("/functions/shop/invoke", json={}).json()["output"] == "latest"
    finally:
        restarted.stop()


def test_the_cli_publishes_routes_and_rolls_back(daemon: DaemonProcess, tmp_path: Path) -> None:
    source = tmp_path / "handler.py"
    source.write_text(_code("v1"))
    assert (
        daemon.cli("fn", "create", "shop", "-r", "python", "--code-file", str(source)).returncode
        == 0
    )
    published = daemon.cli("version", "publish", "shop", "-m", "first")
    assert (published.returncode, published.stdout.strip()) == (0, "published shop:1")
    source.write_text(_code("v2"))
    daemon.cli("fn", "update", "shop", "--code-file", str(source))
    assert daemon.cli("version", "publish", "shop").stdout.strip() == "published shop:2"
    listed = daemon.cli("version", "list", "shop")
    assert "first" in listed.stdout
    assert daemon.cli("alias", "set", "shop", "prod", "-v", "1").returncode == 0
    canary = daemon.cli("alias", "set", "shop", "prod", "-v", "1", "--canary", "2=10")
    assert canary.stdout.strip() == "shop:prod -> 1 (90%), 2 (10%)"
    assert daemon.cli("--json", "invoke", "shop:1").stdout.count('"v1"') == 1
    rolled = daemon.cli("alias", "rollback", "shop", "prod")
    assert rolled.stdout.strip() == "shop:prod rolled back -> 1 (100%)"
    status = daemon.cli("alias", "status", "shop", "prod")
    assert "rollback" in status.stdout
    invoked = daemon.cli("invoke", "shop:prod")
    assert (invoked.returncode, invoked.stdout.strip()) == (0, '"v1"')
    assert invoked.stderr.strip().endswith("· 1")
    refused = daemon.cli("version", "delete", "shop", "1", "--yes")
    assert refused.returncode == 4  # conflict: an alias routes to it
    assert "prod" in refused.stderr
    bad = daemon.cli("alias", "set", "shop", "prod", "-v", "1", "--canary", "2=150")
    assert bad.returncode == 2
