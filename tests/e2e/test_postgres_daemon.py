"""The daemon on PostgreSQL: the same story as on SQLite, and it survives a restart.

Each run gets a throwaway database (CREATE DATABASE … / DROP DATABASE …) on the server at
NOVA_TEST_POSTGRES_URL, so the daemon's migrations run from scratch.
"""

from __future__ import annotations

from pathlib import Path

from tests.e2e.daemon_process import DaemonProcess


def test_daemon_on_postgres_survives_restart(database_url: str, tmp_path: Path) -> None:
    env = {"NOVA_DATABASE_URL": database_url}
    code = "def handler(event, context):\n    return {'pg': event}\n"
    first = DaemonProcess(tmp_path / "data", env=env).start()
    try:
        with first.client() as api:
            assert api.get("/health").json()["store"]["ok"] is True
            api.post(
                "/functions", json={"name": "pg-fn", "runtime": "python", "code": code}
            ).raise_for_status()
            assert api.post("/functions/pg-fn/invoke", json=1).json()["output"] == {"pg": 1}
    finally:
        assert first.stop() == 0
    # A new data dir: everything must come from PostgreSQL, not from local files.
    second = DaemonProcess(tmp_path / "other-data", env=env).start()
    try:
        with second.client() as api:
            assert [item["name"] for item in api.get("/functions").json()["items"]] == ["pg-fn"]
            assert api.post("/functions/pg-fn/invoke", json=2).json()["output"] == {"pg": 2}
            logs = api.get("/functions/pg-fn/logs").json()["items"]
            assert len(logs) >= 1
    finally:
        second.stop()
