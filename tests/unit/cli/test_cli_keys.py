"""Which key the CLI sends (--api-key > NOVA_API_KEY > <data dir>/admin-key), and `nova key`
/ `nova audit` over a fake API."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from .fakes import RunNova


def _recording(seen: list[httpx.Request], body: object) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=body)

    return httpx.MockTransport(handler)


LISTING = {"items": [], "next": None}


def test_the_key_comes_from_the_flag_the_environment_or_the_data_dir(
    nova: RunNova, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "admin-key").write_text("nova_NKFILE_secret\n")
    seen: list[httpx.Request] = []
    transport = _recording(seen, LISTING)
    assert nova("--data-dir", str(tmp_path), "key", "list", transport=transport).exit_code == 0
    monkeypatch.setenv("NOVA_API_KEY", "nova_NKENV_secret")
    assert nova("--data-dir", str(tmp_path), "key", "list", transport=transport).exit_code == 0
    flag = ["--api-key", "nova_NKFLAG_secret", "--data-dir", str(tmp_path)]
    assert nova(*flag, "key", "list", transport=transport).exit_code == 0
    monkeypatch.delenv("NOVA_API_KEY")
    nowhere = str(tmp_path / "none")
    assert nova("--data-dir", nowhere, "key", "list", transport=transport).exit_code == 0
    assert [request.headers.get("authorization") for request in seen] == [
        "Bearer nova_NKFILE_secret",
        "Bearer nova_NKENV_secret",
        "Bearer nova_NKFLAG_secret",
        None,
    ]


def test_key_create_prints_the_key_once_with_its_aws_form(nova: RunNova) -> None:
    seen: list[httpx.Request] = []
    created = {
        "id": "NKID",
        "name": "ci",
        "role": "invoker",
        "key": "nova_NKID_secret",
        "access_key_id": "NKID",
        "secret_access_key": "secret",
    }
    result = nova(
        "key",
        "create",
        "ci",
        "--role",
        "invoker",
        "--scope",
        "orders-*",
        "--expires-in",
        "30d",
        transport=_recording(seen, created),
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "nova_NKID_secret"
    assert "aws_secret_access_key=secret" in result.stderr
    assert json.loads(seen[0].content) == {
        "name": "ci",
        "role": "invoker",
        "scope": "orders-*",
        "expires_in_s": 30 * 86400,
    }


def test_a_refused_key_says_where_the_cli_took_it(nova: RunNova) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        error = {"code": "Auth.MissingCredentials", "message": "this endpoint needs an API key"}
        return httpx.Response(401, json={"error": error})

    result = nova("key", "list", transport=httpx.MockTransport(handler))
    assert result.exit_code == 5
    assert "NOVA_API_KEY" in result.stderr
    assert "admin-key" in result.stderr


def test_audit_sends_its_filters(nova: RunNova) -> None:
    seen: list[httpx.Request] = []
    entry = {
        "seq": 1,
        "at": "2026-12-06T03:00:00+00:00",
        "actor": {"id": "NK1", "name": "ci"},
        "action": "function.create",
        "target": "shop",
        "outcome": "ok",
        "status": 201,
        "source_ip": "10.0.0.1",
    }
    transport = _recording(seen, {"items": [entry], "next": None})
    result = nova(
        "audit",
        "--actor",
        "ci",
        "--action",
        "function.",
        "--outcome",
        "denied",
        "--since",
        "1h",
        transport=transport,
    )
    assert result.exit_code == 0, result.stderr
    assert "function.create" in result.stdout
    assert "10.0.0.1" in result.stdout
    query = dict(seen[0].url.params)
    assert query["actor"] == "ci"
    assert query["action"] == "function."
    assert query["outcome"] == "denied"
    assert "since" in query
