"""`nova version ...` and `nova alias ...`: the requests sent and what people and scripts see."""

from __future__ import annotations

import json
from typing import Any

from nova.cli.exit_codes import ExitCode

from .fakes import FakeApi, RunNova, body_of, error_body


def version(number: int, **overrides: Any) -> dict[str, Any]:
    record = {
        "function": "shop",
        "version": str(number),
        "number": number,
        "description": "",
        "runtime": "python",
        "handler": "handler.handler",
        "memory_mb": 128,
        "code_hash": "ab" * 32,
        "code_size": 99,
        "created_at": "2025-01-02T03:04:05+00:00",
    }
    return record | overrides


def alias(*weights: tuple[int, int], **overrides: Any) -> dict[str, Any]:
    record = {
        "function": "shop",
        "name": "prod",
        "routing_config": {"weights": [{"version": v, "weight": w} for v, w in weights]},
        "description": "",
        "canary": None,
        "analysis": None,
        "revision": 1,
        "updated_at": "2025-01-02T03:04:05+00:00",
    }
    return record | overrides


def test_publish_says_whether_a_version_was_made(nova: RunNova, api: FakeApi) -> None:
    api.on("POST", "/functions/shop/versions", version(3, description="x"), status=201)
    made = nova("version", "publish", "shop", "-m", "x")
    assert (made.exit_code, made.stdout) == (ExitCode.OK, "published shop:3\n")
    assert body_of(api.last) == {"description": "x"}
    api.on("POST", "/functions/shop/versions", version(3), status=200)
    same = nova("version", "publish", "shop")
    assert "nothing published" in same.stdout


def test_version_list_and_json(nova: RunNova, api: FakeApi) -> None:
    page = {"items": [version(1, description="first"), version(2)], "next": None}
    api.on("GET", "/functions/shop/versions", page)
    table = nova("version", "list", "shop")
    assert table.exit_code == ExitCode.OK
    assert table.stdout.splitlines()[1].split()[:2] == ["1", "first"]
    scripted = nova("--json", "version", "list", "shop")
    assert [item["number"] for item in json.loads(scripted.stdout)["items"]] == [1, 2]


def test_alias_set_builds_the_routing_and_the_policy(nova: RunNova, api: FakeApi) -> None:
    api.on("PUT", "/functions/shop/aliases/prod", alias((1, 90), (2, 10)))
    result = nova("alias", "set", "shop", "prod", "-v", "1", "--canary", "2=10", "--auto")
    assert result.exit_code == ExitCode.OK, result.output
    assert result.stdout == "shop:prod -> 1 (90%), 2 (10%)\n"
    sent = body_of(api.last)
    assert sent["routing_config"] == {
        "weights": [{"version": 1, "weight": 90}, {"version": 2, "weight": 10}]
    }
    assert sent["canary"]["steps"] == [10, 25, 50, 100]
    nova("alias", "set", "shop", "prod", "-v", "2")
    assert body_of(api.last) == {"description": "", "version": 2}  # no canary: none sent


def test_alias_set_refuses_a_bad_canary_before_sending(nova: RunNova, api: FakeApi) -> None:
    for bad in ("2", "x=10", "2=0", "2=100"):
        result = nova("alias", "set", "shop", "prod", "-v", "1", "--canary", bad)
        assert result.exit_code == ExitCode.USAGE, bad
    assert api.requests == []


def test_alias_status_shows_the_analysis_and_history(nova: RunNova, api: FakeApi) -> None:
    analysis = {
        "verdict": "rollback",
        "reason": "version 2 failed 30.0% of invocations",
        "at": "2025-01-02T03:04:06+00:00",
        "stable": {"version": 1, "invocations": 90, "errors": 0, "error_rate": 0.0, "p95_ms": 1.0},
        "new": {"version": 2, "invocations": 20, "errors": 6, "error_rate": 0.3, "p95_ms": 1.2},
    }
    api.on("GET", "/functions/shop/aliases/prod", alias((1, 100), analysis=analysis))
    history = [
        {
            "at": "2025-01-02T03:04:06+00:00",
            "before": {"weights": [{"version": 1, "weight": 90}, {"version": 2, "weight": 10}]},
            "after": {"weights": [{"version": 1, "weight": 100}]},
            "reason": "automatic",
            "detail": {"reason": "version 2 failed 30.0% of invocations"},
        }
    ]
    api.on("GET", "/functions/shop/aliases/prod/history", {"items": history, "next": None})
    result = nova("alias", "status", "shop", "prod")
    assert result.exit_code == ExitCode.OK, result.output
    assert "rollback: version 2 failed 30.0%" in result.stdout
    assert "version 2: 20 invocations, 6 errors (30.0%), p95 1.2 ms" in result.stdout
    assert "automatic" in result.stdout


def test_deleting_a_routed_version_exits_with_conflict(nova: RunNova, api: FakeApi) -> None:
    api.on(
        "DELETE",
        "/functions/shop/versions/1",
        error_body("Version.InUse", "version 1 of 'shop' is routed to by alias 'prod'"),
        status=409,
    )
    result = nova("version", "delete", "shop", "1", "--yes")
    assert result.exit_code == ExitCode.CONFLICT
    assert "alias 'prod'" in result.stderr
