"""The daemon with `backend: microvm`: functions run in QEMU microVMs, end to end over HTTP.

One daemon for the module (boots under TCG take seconds). Its images and VM cache are the
test session's (symlinked into its data dir), so nothing is debootstrapped twice. The
backend-independent checks of test_errors run on it unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from nova.images.manifest import ImageManifest
from nova.images.store import ImageStore
from nova.sandbox.microvm.backend import MicrovmBackend
from tests.e2e import test_errors as backend_independent
from tests.e2e.daemon_process import DaemonProcess, skip_unless_available
from tests.images.conftest import image_store, python_image  # noqa: F401 (fixtures)
from tests.microvm.conftest import vm_cache  # noqa: F401 (fixture)

_INFO = MicrovmBackend.probe()
skip_unless_available(_INFO)
# The first test pays for the module's fixtures: a debootstrap of the python image when this
# is the session's first user of it (~40-60 s), then TCG boots; a busy host doubles both.
pytestmark = pytest.mark.timeout(600)

KERNEL = "import os\ndef handler(event, context):\n    return {'v': %d, 'kernel': open('/proc/version').read(), 'pid': os.getpid()}\n"


@pytest.fixture(scope="module")
def vm_api(
    tmp_path_factory: pytest.TempPathFactory,
    image_store: ImageStore,  # noqa: F811
    python_image: ImageManifest,  # noqa: F811
    vm_cache: Path,  # noqa: F811
) -> Iterator[httpx.Client]:
    data_dir = tmp_path_factory.mktemp("microvm") / "data"
    data_dir.mkdir()
    (data_dir / "images").symlink_to(image_store.root)
    vm_cache.mkdir(parents=True, exist_ok=True)
    (data_dir / "microvm").symlink_to(vm_cache)
    env = {
        "NOVA_SANDBOX__ALLOW_PROCESS_BACKEND": "false",
        "NOVA_BACKEND": "microvm",
        "NOVA_POOL__START_TIMEOUT_S": "120",  # TCG boots on a loaded 2-core host
        "NOVA_POOL__QUEUE_TIMEOUT_S": "120",
    }
    daemon = DaemonProcess(data_dir, env=env).start(timeout_s=60)
    try:
        with daemon.client() as client:
            yield client
    finally:
        daemon.stop()


def test_functions_run_in_microvms(vm_api: httpx.Client) -> None:
    assert _INFO.available, _INFO.reason  # under CI=true a missing QEMU or kernel fails here
    runtimes = vm_api.get("/runtimes").json()
    assert runtimes["backend"] == "microvm"
    microvm = {b["name"]: b for b in runtimes["backends"]}["microvm"]
    assert "TCG" in microvm["reason"] or "KVM" in microvm["reason"]  # which, and why
    assert vm_api.get("/health").json()["backend"]["name"] == "microvm"

    vm_api.post(
        "/functions", json={"name": "vm", "runtime": "python", "code": KERNEL % 1}
    ).raise_for_status()
    cold = vm_api.post("/functions/vm/invoke", json={}).json()
    assert cold["error"] is None, cold
    assert cold["cold_start"] is True
    assert cold["output"]["kernel"] != Path("/proc/version").read_text()
    warm = vm_api.post("/functions/vm/invoke", json={}).json()
    assert warm["cold_start"] is False
    # a code update: microVMs cannot reload in place, so a new instance runs the new code
    vm_api.patch("/functions/vm", json={"code": KERNEL % 2}).raise_for_status()
    updated = vm_api.post("/functions/vm/invoke", json={}).json()
    assert updated["output"]["v"] == 2, updated


def test_errors_and_timeouts_as_on_containers(vm_api: httpx.Client) -> None:
    backend_independent.test_handler_exceptions_are_results(vm_api)
    backend_independent.test_timeout_kills_and_the_next_call_works(vm_api)


def test_network_functions_are_refused_clearly(vm_api: httpx.Client) -> None:
    response = vm_api.post(
        "/functions",
        json={"name": "vmnet", "runtime": "python", "code": KERNEL % 1, "network": True},
    )
    assert response.status_code == 422
    assert "network" in response.json()["error"]["message"]
