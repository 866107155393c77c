"""Secrets end to end: a value set through the API reaches the function's environment and
appears nowhere else - not in API responses, invocation records, the daemon's log (at debug
level), the SQLite file or a PostgreSQL dump."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from tests.e2e.daemon_process import DaemonProcess

CODE = """import hashlib, os

def handler(event, context):
    value = os.environ.get("DB_PASSWORD", "")
    print("the password is", value)
    if event.get("fail"):
        raise ValueError("refusing " + value)
    return {"sha256": hashlib.sha256(value.encode()).hexdigest()}
"""


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _eventually(probe: Callable[[], Any], expected: Any, within_s: float = 20) -> None:
    deadline = time.monotonic() + within_s
    seen = probe()
    while seen != expected and time.monotonic() < deadline:
        time.sleep(0.1)
        seen = probe()
    assert seen == expected


def test_a_secret_reaches_the_function_and_nothing_else(store_url: str, tmp_path: Path) -> None:
    value = "s3cr3t-" + secrets.token_hex(12)
    changed = "n3w-" + secrets.token_hex(12)
    seen: list[str] = []  # every response body, searched for the values at the end
    env = {"NOVA_DATABASE_URL": store_url, "NOVA_LOG_LEVEL": "debug"}
    daemon = DaemonProcess(tmp_path / "data", env=env).start()
    try:
        with daemon.client(
            event_hooks={"response": [lambda r: seen.append(r.read().decode())]}
        ) as api:
            created = api.put("/secrets/db-password", json={"value": value})
            assert created.status_code == 201, created.text
            assert set(created.json()) == {"name", "created_at", "updated_at"}
            assert api.put("/secrets/db-password", json={"value": value}).status_code == 200
            key_file = daemon.data_dir / "master-key"
            assert key_file.stat().st_mode & 0o777 == 0o600

            fn = {"name": "vault", "runtime": "python", "code": CODE}
            fn["env"] = {"DB_PASSWORD": "$SECRET:db-password"}
            api.post("/functions", json=fn).raise_for_status()
            result = api.post("/functions/vault/invoke", json={}).json()
            assert result["output"] == {"sha256": _sha(value)}
            failed = api.post("/functions/vault/invoke", json={"fail": True}).json()
            assert failed["error"]["type"] == "ValueError"
            assert "[secret]" in failed["error"]["message"]
            assert api.get("/functions/vault").json()["env"] == fn["env"]
            listed = api.get("/secrets").json()["items"]
            assert [item["name"] for item in listed] == ["db-password"]

            # A new value replaces the instances using the old one.
            api.put("/secrets/db-password", json={"value": changed}).raise_for_status()
            _eventually(
                lambda: api.post("/functions/vault/invoke", json={}).json()["output"],
                {"sha256": _sha(changed)},
            )

            # A missing secret: a clear start error naming it.
            other = {**fn, "name": "orphan", "env": {"TOKEN": "$SECRET:nope"}}
            api.post("/functions", json=other).raise_for_status()
            missing = api.post("/functions/orphan/invoke", json={})
            assert missing.status_code == 409
            assert missing.json()["error"]["code"] == "Function.SecretMissing"
            assert "'nope'" in missing.json()["error"]["message"]

            # Rotation re-encrypts; the value still reaches a fresh instance after a restart.
            old_key = key_file.read_text()
            rotated = api.post("/admin/master-key/rotate").json()
            assert rotated["secrets"] == 1
            assert key_file.read_text() != old_key
            assert key_file.stat().st_mode & 0o777 == 0o600

            _eventually(lambda: len(api.get("/functions/vault/logs").json()["items"]) >= 3, True)
            api.get("/invocations")
        daemon.stop()
        daemon.start()
        with daemon.client(
            event_hooks={"response": [lambda r: seen.append(r.read().decode())]}
        ) as api:
            again = api.post("/functions/vault/invoke", json={}).json()
            assert again["output"] == {"sha256": _sha(changed)}
            logs = api.get("/functions/vault/logs").json()["items"]
            assert any("[secret]" in log["stdout"] for log in logs)
            api.delete("/secrets/db-password").raise_for_status()
            assert api.get("/secrets").json()["items"] == []
    finally:
        daemon.stop()

    places = {"responses": "\n".join(seen), "daemon log": daemon.log()}
    if store_url.startswith("sqlite"):
        database = Path(make_url(store_url).database or "")
        for path in database.parent.glob(database.name + "*"):  # the file, -wal, -shm
            places[path.name] = path.read_bytes().decode("latin-1")
    else:
        places["pg_dump"] = _postgres_dump(store_url)
    for secret in (value, changed):
        for place, text in places.items():
            assert secret not in text, f"the secret's value is in the {place}"
    assert "db-password" in places["responses"]  # the searches did look at something


def _postgres_dump(url: str) -> str:
    """Every row of every table as text: pg_dump where installed, else SELECTs."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    if shutil.which("pg_dump"):
        return subprocess.run(
            ["pg_dump", "--data-only", dsn], capture_output=True, text=True, check=True
        ).stdout

    async def select_all() -> str:
        connection = await asyncpg.connect(dsn)
        try:
            tables = await connection.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
            rows = [
                str(dict(row))
                for table in tables
                for row in await connection.fetch(f'SELECT * FROM "{table["table_name"]}"')
            ]
            return "\n".join(rows)
        finally:
            await connection.close()

    return asyncio.run(select_all())


def test_secrets_cli(daemon: DaemonProcess) -> None:
    value = "cli-" + secrets.token_hex(8)
    set_ = daemon.cli("secret", "set", "api-token", input_text=value + "\n")  # from stdin
    assert set_.returncode == 0, set_.stderr
    assert value not in set_.stdout + set_.stderr
    listed = daemon.cli("secret", "list")
    assert "api-token" in listed.stdout
    assert value not in listed.stdout
    rotated = daemon.cli("admin", "rotate-master-key")
    assert rotated.returncode == 0, rotated.stderr
    assert "1 secret" in rotated.stdout
    deleted = daemon.cli("secret", "delete", "api-token")
    assert deleted.returncode == 0, deleted.stderr
    assert "api-token" not in daemon.cli("secret", "list").stdout
    missing = daemon.cli("secret", "delete", "api-token")
    assert missing.returncode != 0
    assert "api-token" in missing.stderr


def test_a_secret_changed_through_one_daemon_renews_the_others_instances(
    store_url: str, tmp_path: Path
) -> None:
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    env = {"NOVA_DATABASE_URL": store_url, "NOVA_MASTER_KEY": key}
    first = DaemonProcess(tmp_path / "a", env=env).start()
    second = DaemonProcess(tmp_path / "b", env=env).start()
    try:
        with first.client() as a, second.client() as b:
            a.put("/secrets/db-password", json={"value": "one-1234"}).raise_for_status()
            fn = {"name": "vault", "runtime": "python", "code": CODE}
            fn["env"] = {"DB_PASSWORD": "$SECRET:db-password"}
            a.post("/functions", json=fn).raise_for_status()
            _eventually(
                lambda: b.post("/functions/vault/invoke", json={}).json().get("output"),
                {"sha256": _sha("one-1234")},
            )
            # b's warm instance holds the old value; only b's change-log follower can retire it.
            a.put("/secrets/db-password", json={"value": "two-5678"}).raise_for_status()
            _eventually(
                lambda: b.post("/functions/vault/invoke", json={}).json()["output"],
                {"sha256": _sha("two-5678")},
            )
            assert not (tmp_path / "a" / "master-key").exists()  # the key came from the env
    finally:
        first.stop()
        second.stop()


def test_bad_secret_requests_get_clear_4xx(daemon: DaemonProcess) -> None:
    with daemon.client() as api:

        def error(response: httpx.Response) -> tuple[int, str]:
            return response.status_code, response.json()["error"]["code"]

        assert error(api.put("/secrets/bad name", json={"value": "x"})) == (422, "Request.Invalid")
        assert error(api.put("/secrets/ok", json={})) == (422, "Request.Invalid")
        assert error(api.put("/secrets/ok", json={"value": "x", "extra": 1})) == (
            422,
            "Request.Invalid",
        )
        assert error(api.put("/secrets/ok", content=b"{")) == (400, "Request.MalformedJson")
        too_big = api.put("/secrets/ok", json={"value": "x" * (64 * 1024 + 1)})
        assert error(too_big) == (422, "Request.Invalid")
        assert error(api.delete("/secrets/never-set")) == (404, "Secret.NotFound")
        fn = {"name": "f", "runtime": "python", "code": CODE, "env": {"A": "$SECRET:bad name"}}
        refused = api.post("/functions", json=fn)
        assert error(refused) == (422, "Request.Invalid")
        assert "env: A" in refused.json()["error"]["message"]
        assert error(api.post("/admin/master-key/rotate", json={"new_key": "short"})) == (
            422,
            "Request.Invalid",
        )
