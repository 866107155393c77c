"""Every way of supplying code: files map, zip upload (multipart and PUT), the CLI's --dir
(code_path has test_code_path.py)."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.e2e.daemon_process import DaemonProcess
from tests.zips import zip_bytes

APP = "from helpers.greet import greet\ndef main(event, context):\n    return greet(event['who'])\n"
GREET = "def greet(who):\n    return f'hello {who}'\n"


def test_multi_file_function_from_a_file_map(api: httpx.Client) -> None:
    body = {
        "name": "multi",
        "runtime": "python",
        "handler": "app.main",
        "files": {"app.py": APP, "helpers/__init__.py": "", "helpers/greet.py": GREET},
    }
    assert api.post("/functions", json=body).status_code == 201
    assert api.post("/functions/multi/invoke", json={"who": "map"}).json()["output"] == "hello map"


def test_zip_upload_and_code_replacement(api: httpx.Client) -> None:
    archive = zip_bytes({"app.py": APP, "helpers/__init__.py": "", "helpers/greet.py": GREET})
    meta = '{"name": "zipped", "runtime": "python", "handler": "app.main"}'
    created = api.post(
        "/functions", files={"meta": (None, meta), "zip": ("code.zip", archive, "application/zip")}
    )
    assert created.status_code == 201, created.text
    assert api.post("/functions/zipped/invoke", json={"who": "zip"}).json()["output"] == "hello zip"

    replacement = zip_bytes({"app.py": "def main(event, context):\n    return 'replaced'\n"})
    replaced = api.put(
        "/functions/zipped/code", content=replacement, headers={"content-type": "application/zip"}
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["revision"] == 2
    assert api.post("/functions/zipped/invoke", json={}).json()["output"] == "replaced"

    # The same archive again changes nothing: same revision, same update time.
    again = api.put(
        "/functions/zipped/code", content=replacement, headers={"content-type": "application/zip"}
    )
    assert again.status_code == 200, again.text
    assert (again.json()["revision"], again.json()["updated_at"]) == (
        2,
        replaced.json()["updated_at"],
    )
    same_config = api.patch("/functions/zipped", json={"memory_mb": 128}).json()
    assert same_config["revision"] == 2


def test_hostile_zips_are_refused(api: httpx.Client) -> None:
    meta = '{"name": "evil", "runtime": "python"}'
    for files in ({"../escape.py": "x"}, {"/abs.py": "x"}):
        response = api.post(
            "/functions",
            files={"meta": (None, meta), "zip": ("c.zip", zip_bytes(files), "application/zip")},
        )
        assert response.status_code == 422
        assert "safe relative path" in response.json()["error"]["message"]
    response = api.post(
        "/functions",
        files={"meta": (None, meta), "zip": ("c.zip", b"not a zip", "application/zip")},
    )
    assert response.status_code == 422
    assert api.get("/functions").json()["items"] == []


def test_cli_dir_uploads_a_directory(daemon: DaemonProcess, tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "helpers").mkdir(parents=True)
    (source / "app.py").write_text(APP)
    (source / "helpers" / "__init__.py").write_text("")
    (source / "helpers" / "greet.py").write_text(GREET)
    created = daemon.cli(
        "fn",
        "create",
        "dirry",
        "--runtime",
        "python",
        "--handler",
        "app.main",
        "--dir",
        str(source),
    )
    assert created.returncode == 0, created.stderr
    with daemon.client() as api:
        output = api.post("/functions/dirry/invoke", json={"who": "dir"}).json()["output"]
    assert output == "hello dir"


def test_missing_handler_file_is_explained(api: httpx.Client) -> None:
    body = {
        "name": "nohandler",
        "runtime": "python",
        "handler": "main.run",
        "files": {"other.py": "x = 1\n"},
    }
    response = api.post("/functions", json=body)
    assert response.status_code == 422
    assert "main.py" in response.json()["error"]["message"]
