"""What the API accepts can be invoked; what it refuses leaves nothing behind (real daemon)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest

from nova.sandbox.container.backend import ContainerBackend
from tests.e2e.daemon_process import DaemonProcess, isolated_daemon_api
from tests.zips import zip_bytes

HANDLER = "def handler(event, context):\n    return event\n"


def _function(name: str = "fn", **fields: object) -> dict[str, object]:
    return {"name": name, "runtime": "python", "code": HANDLER, **fields}


def _code_on_disk(daemon: DaemonProcess) -> list[str]:
    code = daemon.data_dir / "code"
    return sorted(str(path.relative_to(code)) for path in code.rglob("*"))


def test_a_backend_this_daemon_cannot_run_is_refused_and_nothing_is_stored(
    tmp_path: Path,
) -> None:
    # Disabled by config here, so the refusal does not depend on what the host has.
    env = {"NOVA_SANDBOX__DISABLED_BACKENDS": '["microvm"]'}
    daemon = DaemonProcess(tmp_path / "data", env=env).start()
    try:
        with daemon.client() as api:
            refused = api.post("/functions", json=_function(backend="microvm"))
            assert refused.status_code == 422, refused.text
            assert refused.json()["error"]["code"] == "Sandbox.Unavailable"
            assert "sandbox.disabled_backends" in refused.json()["error"]["message"]
            assert api.get("/functions").json()["items"] == []
            assert _code_on_disk(daemon) == []
            assert api.post("/functions", json=_function()).status_code == 201  # name is free
            # nor does anything else of the microvm backend answer as if it were there
            snapshots = api.get("/vm-snapshots")
            assert snapshots.status_code == 422, snapshots.text
            assert snapshots.json()["error"]["code"] == "Sandbox.Unavailable"
            vm_build = api.post("/images/python/build", params={"vm": "true"})
            assert vm_build.status_code == 422, vm_build.text
            assert vm_build.json()["error"]["code"] == "Image.VmUnavailable"
    finally:
        daemon.stop()


def test_gvisor_with_network_is_refused_at_create(api: httpx.Client) -> None:
    refused = api.post("/functions", json=_function(backend="gvisor", network=True))
    assert refused.status_code == 422, refused.text  # Sandbox.Unavailable where runsc is not
    assert api.get("/functions").json()["items"] == []


def test_the_process_backend_is_refused_without_dev_mode(tmp_path: Path) -> None:
    info = ContainerBackend.probe()
    if not info.available and os.environ.get("CI") != "true":
        pytest.skip(f"needs the container backend: {info.reason}")
    with isolated_daemon_api(tmp_path / "data", "container") as api:
        refused = api.post("/functions", json=_function(backend="process"))
        assert refused.status_code == 422, refused.text
        assert "--dev" in refused.json()["error"]["message"]
        assert api.get("/functions").json()["items"] == []
        assert api.post("/functions", json=_function()).status_code == 201


def test_a_tree_the_filesystem_cannot_hold_is_refused_by_create_and_by_put(
    api: httpx.Client, daemon: DaemonProcess
) -> None:
    files = {"handler.py": HANDLER, "a": "file", "a/b": "needs a directory"}
    refused = api.post("/functions", json={"name": "fn", "runtime": "python", "files": files})
    assert refused.status_code == 422
    assert "'a' is a file" in refused.json()["error"]["message"]
    assert api.get("/functions").json()["items"] == []
    api.post("/functions", json=_function()).raise_for_status()
    before = _code_on_disk(daemon)
    put = api.put(
        "/functions/fn/code",
        content=zip_bytes({"handler.py": HANDLER, "x" * 300: ""}),
        headers={"content-type": "application/zip"},
    )
    assert put.status_code == 422
    assert "at most 255 bytes" in put.json()["error"]["message"]
    assert api.get("/functions/fn").json()["revision"] == 1
    assert _code_on_disk(daemon) == before
    assert api.post("/functions/fn/invoke", json={"ok": 1}).json()["output"] == {"ok": 1}


def test_a_result_nested_past_the_encoders_limit_is_a_serialisation_error(
    api: httpx.Client,
) -> None:
    code = "def handler(event, context):\n    value = []\n    for _ in range(300):\n        value = [value]\n    return value\n"
    api.post("/functions", json=_function(code=code)).raise_for_status()
    response = api.post("/functions/fn/invoke", json={})
    assert response.status_code == 200, response.text
    assert response.json()["error"]["type"] == "Runtime.SerializationError"


def test_code_is_written_again_after_a_restart_that_lost_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = DaemonProcess(data_dir).start()
    try:
        with first.client() as api:
            api.post("/functions", json=_function()).raise_for_status()
    finally:
        first.stop()
    shutil.rmtree(data_dir / "code")
    second = DaemonProcess(data_dir).start()
    try:
        with second.client() as api:
            result = api.post("/functions/fn/invoke", json={"back": True})
            assert result.status_code == 200, result.text
            assert result.json()["output"] == {"back": True}
    finally:
        second.stop()


def test_code_limits_are_settings(tmp_path: Path) -> None:
    env = {"NOVA_CODE__MAX_FILES": "2", "NOVA_CODE__MAX_UPLOAD_BYTES": "4096"}
    daemon = DaemonProcess(tmp_path / "data", env=env).start()
    try:
        with daemon.client() as api:
            files = {"handler.py": HANDLER, "a.py": "", "b.py": ""}
            refused = api.post(
                "/functions", json={"name": "fn", "runtime": "python", "files": files}
            )
            assert refused.status_code == 422
            assert "code.max_files" in refused.json()["error"]["message"]
            too_big = api.post("/functions", json=_function(description="x" * 5000))
            assert too_big.status_code == 413
            assert "code.max_upload_bytes" in too_big.json()["error"]["message"]
            api.post("/functions", json=_function()).raise_for_status()
            archive = os.urandom(5000)  # incompressible: over the limit as uploaded
            put = api.put(
                "/functions/fn/code", content=archive, headers={"content-type": "application/zip"}
            )
            assert put.status_code == 413
            meta = '{"name": "zipped", "runtime": "python"}'
            multipart = api.post(
                "/functions",
                files={"meta": (None, meta), "zip": ("c.zip", archive, "application/zip")},
            )
            assert multipart.status_code == 413
            assert [f["name"] for f in api.get("/functions").json()["items"]] == ["fn"]
    finally:
        daemon.stop()
