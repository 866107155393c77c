"""The daemon with `backend: gvisor`: functions run under runsc, end to end over HTTP."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from nova.sandbox.gvisor.backend import GvisorBackend
from tests.e2e.daemon_process import isolated_daemon_api, skip_unless_available
from tests.e2e.hot_reload import check_hot_reload

_INFO = GvisorBackend.probe()
skip_unless_available(_INFO)

# gVisor implements /proc/version itself: proof the function talks to its kernel, not the host's.
PROBE = "import os\ndef handler(event, context):\n    return {'uid': os.getuid(), 'kernel': open('/proc/version').read()}\n"


@pytest.fixture
def gvisor_api(tmp_path: Path) -> Iterator[httpx.Client]:
    with isolated_daemon_api(tmp_path / "data", "gvisor") as client:
        yield client


def test_functions_run_under_gvisor(gvisor_api: httpx.Client) -> None:
    assert _INFO.available, _INFO.reason  # under CI=true an unavailable runsc fails here
    assert gvisor_api.get("/runtimes").json()["backend"] == "gvisor"
    gvisor_api.post(
        "/functions", json={"name": "gv", "runtime": "python", "code": PROBE}
    ).raise_for_status()
    cold = gvisor_api.post("/functions/gv/invoke", json={}).json()
    assert cold["error"] is None, cold
    assert cold["output"]["uid"] == 65534
    host_kernel = Path("/proc/version").read_text()
    assert cold["output"]["kernel"] != host_kernel
    warm = gvisor_api.post("/functions/gv/invoke", json={}).json()
    assert warm["cold_start"] is False


def test_out_of_memory_under_gvisor(gvisor_api: httpx.Client) -> None:
    code = "def handler(event, context):\n    return len(bytearray(event['mb'] * 1024 * 1024))\n"
    gvisor_api.post(
        "/functions", json={"name": "gvhog", "runtime": "python", "code": code}
    ).raise_for_status()
    result = gvisor_api.post("/functions/gvhog/invoke", json={"mb": 2048}).json()
    assert result["error"]["type"] == "Function.OutOfMemory"
    assert (
        gvisor_api.post("/functions/gvhog/invoke", json={"mb": 4}).json()["output"]
        == 4 * 1024 * 1024
    )


@pytest.mark.parametrize(
    "runtime",
    [
        "python",
        pytest.param(
            "node",
            marks=pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed"),
        ),
    ],
)
def test_a_code_update_hot_reloads_the_warm_gvisor_sandbox(
    gvisor_api: httpx.Client, runtime: str
) -> None:
    # The code mount alone is revalidated by gVisor (gvisor_spec): without that, the sandbox
    # would go on reading the old files and answer v1.
    check_hot_reload(gvisor_api, f"gvhot-{runtime}", runtime)
