"""Authentication and RBAC on a real daemon: every route refuses requests without a valid key,
roles and scopes hold, the key lifecycle works over HTTP and the CLI, the admin key is created
once and kept private, and a daemon without authentication stays on loopback."""

from __future__ import annotations

import json
import re
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.daemon_process import NOVA, DaemonProcess

HANDLER = "def handler(event, context):\n    return {'ok': True}\n"
PUBLIC = {"/health", "/health/live", "/health/ready", "/health/startup"}


def _routes(api: httpx.Client) -> list[tuple[str, str]]:
    """Every (method, path) the app documents, path parameters filled in."""
    document = api.get("/openapi.json").raise_for_status().json()
    routes = []
    for path, operations in document["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "x", path)
        routes.extend((method.upper(), concrete) for method in operations)
    return routes


def _code(response: httpx.Response) -> str:
    body = response.json()
    return str(body["error"]["code"] if "error" in body else body["__type"])


def _create_key(api: httpx.Client, name: str, role: str, **fields: Any) -> str:
    response = api.post("/keys", json={"name": name, "role": role, **fields})
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


def test_every_route_refuses_a_missing_or_wrong_key(
    daemon: DaemonProcess, api: httpx.Client
) -> None:
    routes = _routes(api)
    assert ("POST", "/functions/x/invoke") in routes
    assert ("POST", "/2015-03-31/functions/x/invocations") in routes
    assert ("GET", "/invocations/stream") in routes
    with httpx.Client(base_url=daemon.url, timeout=30) as anonymous:
        for method, path in routes:
            if path in PUBLIC:
                assert anonymous.request(method, path).status_code in (200, 503), path
                continue
            missing = anonymous.request(method, path)
            wrong = anonymous.request(method, path, headers={"X-API-Key": "nova_NKX_wrong"})
            if path.startswith("/2015-03-31/"):  # Lambda's shape: AWS SDKs raise their own
                assert (missing.status_code, _code(missing)) == (
                    403,
                    "MissingAuthenticationTokenException",
                ), path
                assert (wrong.status_code, _code(wrong)) == (403, "UnrecognizedClientException")
                continue
            assert (missing.status_code, _code(missing)) == (401, "Auth.MissingCredentials"), path
            assert missing.headers["www-authenticate"].startswith("Bearer")
            assert (wrong.status_code, _code(wrong)) == (401, "Auth.InvalidKey"), path


def test_roles_and_scopes(daemon: DaemonProcess, api: httpx.Client) -> None:
    for name in ("orders-api", "billing"):
        body = {"name": name, "runtime": "python", "code": HANDLER}
        api.post("/functions", json=body).raise_for_status()
    viewer = _create_key(api, "viewer", "viewer")
    invoker = _create_key(api, "invoker", "invoker")
    scoped = _create_key(api, "orders-dev", "developer", scope="orders-*")
    with (
        daemon.client(headers={"Authorization": f"Bearer {viewer}"}) as as_viewer,
        daemon.client(headers={"Authorization": f"Bearer {invoker}"}) as as_invoker,
        daemon.client(headers={"Authorization": f"Bearer {scoped}"}) as as_scoped,
    ):
        assert as_viewer.get("/functions/billing").status_code == 200
        deploy = as_viewer.post("/functions", json={"name": "x", "runtime": "python"})
        assert (deploy.status_code, _code(deploy)) == (403, "Auth.Forbidden")
        assert as_viewer.post("/functions/billing/invoke", json={}).status_code == 403
        assert as_viewer.get("/keys").status_code == 403
        assert as_invoker.post("/functions/billing/invoke", json={}).json()["output"] == {
            "ok": True
        }
        assert as_invoker.get("/functions").status_code == 403
        assert as_invoker.delete("/functions/billing").status_code == 403
        assert as_invoker.get("/secrets").status_code == 403
        # A scoped key: its functions as usual, the others as if they did not exist.
        names = [item["name"] for item in as_scoped.get("/functions").json()["items"]]
        assert names == ["orders-api"]
        assert as_scoped.post("/functions/orders-api/invoke", json={}).status_code == 200
        hidden = as_scoped.get("/functions/billing")
        assert (hidden.status_code, _code(hidden)) == (404, "Function.NotFound")
        assert _code(as_scoped.post("/functions/billing/invoke", json={})) == "Function.NotFound"
        gone = as_scoped.post("/functions/nope/invoke", json={})
        assert (
            hidden.json()["error"]["message"].replace("billing", "nope")
            == (gone.json()["error"]["message"])
        )
        assert as_scoped.get("/stats").status_code == 404
        outside = {"name": "billing-2", "runtime": "python", "code": HANDLER}
        assert as_scoped.post("/functions", json=outside).status_code == 404
        lam = as_scoped.post("/2015-03-31/functions/billing/invocations", content=b"{}")
        assert (lam.status_code, _code(lam)) == (404, "ResourceNotFoundException")
        assert as_scoped.post("/2015-03-31/functions/orders-api/invocations").status_code == 200


def test_key_lifecycle_over_http(daemon: DaemonProcess, api: httpx.Client) -> None:
    key = _create_key(api, "ci", "developer", expires_in_s=3600)
    listed = {item["name"]: item for item in api.get("/keys").json()["items"]}
    assert set(listed) == {"admin", "ci"}
    assert listed["ci"]["expires_at"] is not None
    assert listed["ci"]["last_used_at"] is None
    assert "key" not in listed["ci"]
    assert key not in json.dumps(listed)
    bearer = {"Authorization": f"Bearer {key}"}
    assert api.get("/functions", headers=bearer).status_code == 200
    assert api.get("/keys/ci").json()["last_used_at"] is not None  # counted before written
    assert api.post("/keys/ci/disable").json()["enabled"] is False
    refused = api.get("/functions", headers=bearer)
    assert (refused.status_code, _code(refused)) == (401, "Auth.KeyDisabled")
    api.post("/keys/ci/enable").raise_for_status()
    assert api.get("/functions", headers={"X-API-Key": key}).status_code == 200
    api.delete("/keys/ci").raise_for_status()
    assert _code(api.get("/functions", headers=bearer)) == "Auth.InvalidKey"
    assert _code(api.delete("/keys/ci")) == "Key.NotFound"
    assert _code(api.delete("/keys/admin")) == "Key.LastAdmin"
    assert api.post("/keys", json={"name": "x", "role": "root"}).status_code == 422
    assert _code(api.post("/keys", json={"name": "admin", "role": "viewer"})) == (
        "Key.AlreadyExists"
    )
    brief = _create_key(api, "brief", "viewer", expires_in_s=1)
    time.sleep(1.5)
    expired = api.get("/functions", headers={"Authorization": f"Bearer {brief}"})
    assert (expired.status_code, _code(expired)) == (401, "Auth.Expired")


def test_key_lifecycle_with_the_cli(daemon: DaemonProcess) -> None:
    created = daemon.cli("key", "create", "deployer", "--role", "developer", "--expires-in", "30d")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("nova_")
    assert "shown only now" in created.stderr
    listed = daemon.cli("key", "list")
    assert "deployer" in listed.stdout
    assert "developer" in listed.stdout
    assert token not in listed.stdout
    assert daemon.cli("key", "disable", "deployer").stdout.strip() == "disabled key deployer"
    assert daemon.cli("key", "enable", "deployer").stdout.strip() == "enabled key deployer"
    as_deployer = daemon.cli("--api-key", token, "fn", "list")
    assert as_deployer.returncode == 0, as_deployer.stderr
    assert daemon.cli("key", "delete", "deployer").stdout.strip() == "deleted key deployer"
    refused = daemon.cli("--api-key", token, "fn", "list")
    assert refused.returncode != 0
    assert "not valid" in refused.stderr
    assert "NOVA_API_KEY" in refused.stderr


def test_the_cli_reads_the_admin_key_from_the_data_dir(daemon: DaemonProcess) -> None:
    env = {k: v for k, v in daemon.cli_env.items() if k != "NOVA_API_KEY"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [NOVA, "--endpoint", daemon.url, *args, "fn", "list"]
        return subprocess.run(command, capture_output=True, text=True, env=env, check=False)

    assert run("--data-dir", str(daemon.data_dir)).returncode == 0
    assert (
        subprocess.run(
            [NOVA, "--endpoint", daemon.url, "fn", "list"],
            capture_output=True,
            text=True,
            env={**env, "NOVA_DATA_DIR": str(daemon.data_dir)},
            check=False,
        ).returncode
        == 0
    )
    missing = run("--data-dir", str(daemon.data_dir.parent / "elsewhere"))
    assert missing.returncode != 0
    assert "admin-key" in missing.stderr


def test_the_admin_key_is_created_once_and_kept_private(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path / "data").start()
    key_file = daemon.data_dir / "admin-key"
    try:
        key = key_file.read_text().strip()
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert daemon.log().count(key) == 1  # shown once, on the terminal
        assert "Authorization: Bearer $(cat" in daemon.log()
        stored = (daemon.data_dir / "nova.db").read_bytes()
        assert key.encode() not in stored
    finally:
        daemon.stop()
    daemon.start()  # a restart keeps the key and prints none
    try:
        assert key_file.read_text().strip() == key
        assert daemon.log().count(key) == 1
        with daemon.client() as api:
            assert api.get("/keys").status_code == 200
    finally:
        daemon.stop()


def test_without_authentication_the_daemon_stays_on_loopback(tmp_path: Path) -> None:
    env = {"NOVA_AUTH__ENABLED": "false"}
    refused = subprocess.run(
        [NOVA, "daemon", "--host", "0.0.0.0", "--port", "0", "--data-dir", str(tmp_path / "a")],
        capture_output=True,
        text=True,
        env={**DaemonProcess(tmp_path / "a").env, **env},
        timeout=60,
        check=False,
    )
    assert refused.returncode != 0
    assert "--insecure" in refused.stderr
    daemon = DaemonProcess(tmp_path / "b", env=env).start()  # on 127.0.0.1: allowed
    try:
        assert daemon.api_key is None
        with httpx.Client(base_url=daemon.url) as anonymous:
            assert anonymous.get("/functions").status_code == 200
    finally:
        daemon.stop()


@pytest.mark.parametrize("header", ["Authorization", "X-API-Key"])
def test_the_invoke_fast_path_takes_either_header(
    daemon: DaemonProcess, api: httpx.Client, header: str
) -> None:
    api.post("/functions", json={"name": "fast", "runtime": "python", "code": HANDLER})
    assert daemon.api_key is not None
    value = f"Bearer {daemon.api_key}" if header == "Authorization" else daemon.api_key
    with httpx.Client(base_url=daemon.url, timeout=60) as client:
        answer = client.post("/functions/fast/invoke", json={}, headers={header: value})
        assert answer.json()["output"] == {"ok": True}
        assert client.post("/functions/fast/invoke", json={}).status_code == 401


def test_jwts_are_accepted_with_their_role(tmp_path: Path) -> None:
    import jwt

    secret = "a-shared-secret-of-at-least-32-bytes!"
    env = {
        "NOVA_AUTH__JWT__HS256_SECRET": secret,
        "NOVA_AUTH__JWT__AUDIENCE": "nova",
        "NOVA_AUTH__JWT__ISSUER": "https://idp.example",
    }
    daemon = DaemonProcess(tmp_path / "data", env=env).start()

    def token(**claims: Any) -> dict[str, str]:
        now = int(time.time())
        body = {
            "sub": "ada",
            "iss": "https://idp.example",
            "aud": "nova",
            "exp": now + 600,
            "nova_role": "viewer",
            **claims,
        }
        return {"Authorization": f"Bearer {jwt.encode(body, secret, 'HS256')}"}

    try:
        with httpx.Client(base_url=daemon.url, timeout=30) as client:
            assert client.get("/functions", headers=token()).status_code == 200
            deploy = client.post("/functions", json={"name": "x"}, headers=token())
            assert (deploy.status_code, _code(deploy)) == (403, "Auth.Forbidden")
            late = client.get("/functions", headers=token(exp=int(time.time()) - 300))
            assert (late.status_code, _code(late)) == (401, "Auth.Expired")
            other = client.get("/functions", headers=token(aud="elsewhere"))
            assert (other.status_code, _code(other)) == (401, "Auth.InvalidToken")
            admin = token(nova_role="admin", sub="ops")
            assert client.get("/keys", headers=admin).status_code == 200
            deadline = time.monotonic() + 10  # refusals are written in batches
            actors: set[str] = set()
            while "ada" not in actors and time.monotonic() < deadline:
                time.sleep(0.2)
                entries = client.get("/audit", headers=admin).json()["items"]
                actors = {entry["actor"]["name"] for entry in entries}
            assert "ada" in actors  # the viewer's refused deploy, by its subject
    finally:
        daemon.stop()
