"""Custom runtimes under gVisor: the Runtime API on the sandbox's own (netstack) loopback."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from nova.sandbox.gvisor.backend import GvisorBackend
from tests.e2e.daemon_process import isolated_daemon_api, skip_unless_available
from tests.e2e.test_custom_runtime import BASH_BOOTSTRAP

_INFO = GvisorBackend.probe()
skip_unless_available(_INFO)


@pytest.fixture
def gvisor_api(tmp_path: Path) -> Iterator[httpx.Client]:
    with isolated_daemon_api(tmp_path / "data", "gvisor") as client:
        yield client


def test_bash_bootstrap_in_gvisor(gvisor_api: httpx.Client) -> None:
    assert _INFO.available, _INFO.reason
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed (apt-get install curl)")
    body = {"name": "gv-bash", "runtime": "provided", "files": {"bootstrap": BASH_BOOTSTRAP}}
    gvisor_api.post("/functions", json=body).raise_for_status()
    for n in range(2):
        result = gvisor_api.post("/functions/gv-bash/invoke", json={"n": n}).json()
        assert result["output"] == {"echo": {"n": n}}, result
