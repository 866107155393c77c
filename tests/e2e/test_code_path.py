"""`code_path` against the real daemon: off by default, confined to code.allowed_paths."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.e2e.daemon_process import DaemonProcess

APP = "from helpers.greet import greet\ndef main(event, context):\n    return greet(event['who'])\n"
GREET = "def greet(who):\n    return f'hello {who}'\n"


def _source(root: Path) -> Path:
    source = root / "app"
    (source / "helpers").mkdir(parents=True)
    (source / "app.py").write_text(APP)
    (source / "helpers" / "__init__.py").write_text("")
    (source / "helpers" / "greet.py").write_text(GREET)
    return source


def _body(path: Path | str) -> dict[str, str]:
    return {"name": "pathy", "runtime": "python", "handler": "app.main", "code_path": str(path)}


def test_code_path_is_off_by_default(api: httpx.Client, tmp_path: Path) -> None:
    refused = api.post("/functions", json=_body(_source(tmp_path)))
    assert refused.status_code == 422
    assert "code.allowed_paths" in refused.json()["error"]["message"]
    assert api.get("/functions").json()["items"] == []


def test_code_path_reads_below_the_allowed_roots_only(tmp_path: Path) -> None:
    allowed = tmp_path / "functions"
    source = _source(allowed)
    secret = tmp_path / "secret.txt"
    secret.write_text("root only")
    secret.chmod(0o600)
    env = {"NOVA_CODE__ALLOWED_PATHS": json.dumps([str(allowed)])}
    daemon = DaemonProcess(tmp_path / "data", env=env).start()
    try:
        with daemon.client() as api:
            assert api.post("/functions", json=_body(source)).status_code == 201
            result = api.post("/functions/pathy/invoke", json={"who": "path"}).json()
            assert result["output"] == "hello path"

            outside = api.post("/functions", json=_body(tmp_path) | {"name": "outside"})
            assert outside.status_code == 422
            assert "not below a directory in" in outside.json()["error"]["message"]

            (source / "leak.txt").symlink_to(secret)
            leak = api.patch("/functions/pathy", json={"code_path": str(source)})
            assert leak.status_code == 422
            assert "outside the allowed directory" in leak.json()["error"]["message"]
            assert api.get("/functions/pathy").json()["revision"] == 1
    finally:
        daemon.stop()
