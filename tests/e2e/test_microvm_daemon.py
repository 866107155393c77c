"""The daemon with `backend: microvm`: functions run in QEMU microVMs, end to end over HTTP.

One daemon for the module (boots under TCG take seconds). Its images and VM cache are the
test session's (symlinked into its data dir), so nothing is debootstrapped twice. The
backend-independent checks of test_errors run on it unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

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

SNAPSHOT_WAIT_S = 120  # a bound, not a measurement: saving under TCG on a loaded host
# A handler that can hold its instance busy, so that concurrent calls make the pool start more.
SLEEPER = (
    "import os, time\n"
    "def handler(event, context):\n"
    "    time.sleep(event.get('sleep', 0))\n"
    "    return {'v': %d, 'random': os.urandom(8).hex()}\n"
)
KERNEL = "import os\ndef handler(event, context):\n    return {'v': %d, 'kernel': open('/proc/version').read(), 'pid': os.getpid()}\n"


@pytest.fixture(scope="module")
def vm_daemon(
    tmp_path_factory: pytest.TempPathFactory,
    image_store: ImageStore,  # noqa: F811
    python_image: ImageManifest,  # noqa: F811
    vm_cache: Path,  # noqa: F811
) -> Iterator[DaemonProcess]:
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
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture(scope="module")
def vm_api(vm_daemon: DaemonProcess) -> Iterator[httpx.Client]:
    with vm_daemon.client() as client:
        yield client


def test_functions_run_in_microvms(vm_api: httpx.Client) -> None:
    assert _INFO.available, _INFO.reason  # under CI=true a missing QEMU or kernel fails here
    runtimes = vm_api.get("/runtimes").json()
    assert runtimes["backend"] == "microvm"
    microvm = {b["name"]: b for b in runtimes["backends"]}["microvm"]
    assert "TCG" in microvm["reason"] or "KVM" in microvm["reason"]  # which, and why
    health = vm_api.get("/health").json()["backend"]
    assert health["name"] == "microvm"
    assert "agent channel virtio-serial (vsock unavailable: " in health["reason"]

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
    backend_independent.timeout_kills_and_the_next_call_works(vm_api, 5.0)


NETWORKED = (
    "import socket\n"
    "def handler(event, context):\n"
    "    return sorted(name for _, name in socket.if_nameindex())\n"
)


def test_network_functions_get_a_network_device_where_the_host_can(vm_api: httpx.Client) -> None:
    """The firewall itself is tested at the backend (tests/microvm/test_microvm_network.py)."""
    microvm = {b["name"]: b for b in vm_api.get("/runtimes").json()["backends"]}["microvm"]
    response = vm_api.post(
        "/functions",
        json={"name": "vmnet", "runtime": "python", "code": NETWORKED, "network": True},
    )
    if not microvm["supports_network"]:  # no slirp4netns or nftables here: a clear refusal
        assert response.status_code == 422
        assert "network" in response.json()["error"]["message"]
        return
    assert response.status_code == 201, response.text
    assert "network: QEMU user-mode networking" in microvm["reason"]
    result = vm_api.post("/functions/vmnet/invoke", json={}, timeout=180).json()
    assert result["output"] == ["eth0", "lo"], result


def _vm_counters(api: httpx.Client) -> dict[str, int]:
    counts = api.get("/stats").json()["this_daemon"]
    return {name: counts[name] for name in ("vm_snapshots", "vm_restores", "vm_restore_failures")}


def _wait_for_snapshot(api: httpx.Client, saved_before: int) -> None:
    deadline = time.monotonic() + SNAPSHOT_WAIT_S
    while _vm_counters(api)["vm_snapshots"] <= saved_before:
        assert time.monotonic() < deadline, "no VM snapshot was saved"
        time.sleep(0.2)


def _concurrent(api: httpx.Client, name: str, calls: int) -> list[dict[str, Any]]:
    """``calls`` invocations at once, each holding its instance: the last needs a new one."""
    with ThreadPoolExecutor(calls) as pool:
        futures = [
            pool.submit(api.post, f"/functions/{name}/invoke", json={"sleep": 3}, timeout=180)
            for _ in range(calls)
        ]
        return [future.result().json() for future in futures]


def test_snapshots_restore_fall_back_when_corrupt_and_follow_code_changes(
    vm_daemon: DaemonProcess,
    vm_api: httpx.Client,
    vm_cache: Path,  # noqa: F811
) -> None:
    name = "vmsnap"
    vm_api.post(
        "/functions",
        json={"name": name, "runtime": "python", "code": SLEEPER % 1, "max_replicas": 3},
    ).raise_for_status()
    before = _vm_counters(vm_api)
    first = vm_api.post(f"/functions/{name}/invoke", json={}, timeout=180).json()
    assert first["error"] is None, first
    _wait_for_snapshot(vm_api, before["vm_snapshots"])  # saved after Init
    [listed] = [i for i in vm_api.get("/vm-snapshots").json()["items"] if i["function"] == name]
    assert listed["disk_bytes"] > 0

    # a second instance, started while the first is busy, is restored from the snapshot
    results = _concurrent(vm_api, name, 2)
    assert [r["error"] for r in results] == [None, None], results
    assert _vm_counters(vm_api)["vm_restores"] == before["vm_restores"] + 1
    assert results[0]["output"]["random"] != results[1]["output"]["random"]

    # a corrupt snapshot: the third instance boots instead, the failure is counted in /stats
    [snapshot] = (vm_cache / "snapshots").glob(f"{name}-*")
    with (snapshot / "ram").open("r+b") as ram:
        ram.seek(4096)
        ram.write(b"corrupt!")
    saved = _vm_counters(vm_api)["vm_snapshots"]
    results = _concurrent(vm_api, name, 3)
    assert [r["error"] for r in results] == [None] * 3, results
    after = _vm_counters(vm_api)
    assert after["vm_restore_failures"] == before["vm_restore_failures"] + 1
    assert after["vm_restores"] == before["vm_restores"] + 1  # no restore of the corrupt one
    _wait_for_snapshot(vm_api, saved)  # the booted instance saved a good one again

    # new code: a new snapshot key, so the next start boots the new code rather than
    # restoring the old snapshot (which is still there under the old key)
    assert list((vm_cache / "snapshots").glob(f"{name}-*"))
    saved = _vm_counters(vm_api)["vm_snapshots"]
    vm_api.patch(f"/functions/{name}", json={"code": SLEEPER % 2}).raise_for_status()
    updated = vm_api.post(f"/functions/{name}/invoke", json={}, timeout=180).json()
    assert updated["output"]["v"] == 2, updated
    assert _vm_counters(vm_api)["vm_restores"] == after["vm_restores"]

    # the new code's snapshot replaces the old one; evicting it leaves none
    _wait_for_snapshot(vm_api, saved)
    [current] = [i for i in vm_api.get("/vm-snapshots").json()["items"] if i["function"] == name]
    assert current["key"] != listed["key"]
    shown = vm_daemon.cli("vm-snapshot", "list")
    assert shown.returncode == 0, shown.stderr
    assert name in shown.stdout
    evicted = vm_daemon.cli("vm-snapshot", "evict", name)
    assert evicted.returncode == 0, evicted.stderr
    assert "evicted 1 VM snapshot(s)" in evicted.stdout
    assert not [i for i in vm_api.get("/vm-snapshots").json()["items"] if i["function"] == name]


def test_image_build_vm_builds_the_guest_kernel_and_drives(vm_daemon: DaemonProcess) -> None:
    built = vm_daemon.cli("image", "build", "python", "--vm")
    assert built.returncode == 0, built.stderr
    assert "guest vm-" in built.stdout  # the kernel + initramfs, content-addressed
    assert "rootfs drive debian-" in built.stdout
    status = vm_daemon.cli("--json", "image", "status", "python")
    assert '"vm": "guest vm-' in status.stdout
