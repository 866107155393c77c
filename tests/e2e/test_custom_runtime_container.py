"""Custom runtimes in containers: the bootstrap, its shell and curl come from the host's /usr
(the default root), the Runtime API from the instance's own loopback."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from nova.sandbox.container.backend import ContainerBackend
from tests.e2e.daemon_process import isolated_daemon_api, skip_unless_available
from tests.e2e.test_custom_runtime import BASH_BOOTSTRAP, EXAMPLES, zip_with_executable

_INFO = ContainerBackend.probe()
skip_unless_available(_INFO)


@pytest.fixture
def container_api(tmp_path: Path) -> Iterator[httpx.Client]:
    with isolated_daemon_api(tmp_path / "data", "container") as client:
        yield client


def test_bash_and_compiled_bootstraps_in_containers(
    container_api: httpx.Client, tmp_path: Path
) -> None:
    assert _INFO.available, _INFO.reason
    cc = shutil.which("cc")
    if shutil.which("curl") is None or cc is None:
        pytest.skip("curl and cc are needed (apt-get install curl gcc)")
    body = {"name": "boxed-bash", "runtime": "provided", "files": {"bootstrap": BASH_BOOTSTRAP}}
    container_api.post("/functions", json=body).raise_for_status()
    for n in range(2):
        result = container_api.post("/functions/boxed-bash/invoke", json={"n": n}).json()
        assert result["output"] == {"echo": {"n": n}}, result
    binary = tmp_path / "bootstrap"
    subprocess.run([cc, "-O2", "-o", str(binary), str(EXAMPLES / "c" / "bootstrap.c")], check=True)
    meta = json.dumps({"name": "boxed-c", "runtime": "provided"})
    archive = zip_with_executable({"bootstrap": binary.read_bytes()})
    container_api.post(
        "/functions", files={"meta": (None, meta), "zip": ("c.zip", archive, "application/zip")}
    ).raise_for_status()
    result = container_api.post("/functions/boxed-c/invoke", json=[1, 2]).json()
    assert result["output"] == {"echo": [1, 2]}, result
