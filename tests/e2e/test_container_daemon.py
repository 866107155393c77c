"""The daemon on its default backend: containers, chosen by `auto`, end to end over HTTP."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from nova.sandbox.container.backend import ContainerBackend
from tests.e2e.daemon_process import DaemonProcess, isolated_daemon_api, skip_unless_available
from tests.e2e.hot_reload import check_hot_reload

_INFO = ContainerBackend.probe()
skip_unless_available(_INFO)

PID = "import os\ndef handler(event, context):\n    return {'v': %d, 'uid': os.getuid()}\n"


@pytest.fixture
def container_api(tmp_path: Path) -> Iterator[httpx.Client]:
    # No --dev and no backend given: the daemon must choose containers by itself.
    with isolated_daemon_api(tmp_path / "data", "auto") as client:
        yield client


def test_auto_chooses_containers_and_reports_why(container_api: httpx.Client) -> None:
    assert _INFO.available, _INFO.reason  # under CI=true an unavailable backend fails here
    body = container_api.get("/runtimes").json()
    assert body["backend"] == "container"
    backends = {item["name"]: item for item in body["backends"]}
    assert backends["container"]["available"] is True
    assert backends["process"]["available"] is False
    assert "--dev" in backends["process"]["reason"]
    assert container_api.get("/health").json()["backend"]["name"] == "container"


def test_lifecycle_in_containers(container_api: httpx.Client) -> None:
    container_api.post(
        "/functions", json={"name": "boxed", "runtime": "python", "code": PID % 1}
    ).raise_for_status()
    cold = container_api.post("/functions/boxed/invoke", json={}).json()
    warm = container_api.post("/functions/boxed/invoke", json={}).json()
    assert (cold["cold_start"], warm["cold_start"]) == (True, False)
    assert cold["output"] == {"v": 1, "uid": 65534}  # an unprivileged uid, not the daemon's root
    container_api.patch("/functions/boxed", json={"code": PID % 2}).raise_for_status()
    updated = container_api.post("/functions/boxed/invoke", json={}).json()
    assert updated["output"]["v"] == 2
    assert updated["cold_start"] is False  # hot-reloaded into the warm instance
    assert container_api.delete("/functions/boxed").status_code == 200


@pytest.mark.parametrize(
    ("runtime", "concurrency"),
    [
        ("python", 1),
        ("python", 2),
        pytest.param(
            "node",
            1,
            marks=pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed"),
        ),
    ],
    ids=["python-direct", "python-relayed", "node"],
)
def test_a_code_update_hot_reloads_the_warm_container(
    container_api: httpx.Client, runtime: str, concurrency: int
) -> None:
    check_hot_reload(container_api, f"hot-{runtime}-{concurrency}", runtime, concurrency)


def test_out_of_memory_is_classified_and_recovers(container_api: httpx.Client) -> None:
    code = "def handler(event, context):\n    block = bytearray(event['mb'] * 1024 * 1024)\n    return len(block)\n"
    container_api.post(
        "/functions", json={"name": "hog", "runtime": "python", "code": code, "memory_mb": 128}
    ).raise_for_status()
    result = container_api.post("/functions/hog/invoke", json={"mb": 2048}).json()
    assert result["error"]["type"] == "Function.OutOfMemory"
    assert (
        container_api.post("/functions/hog/invoke", json={"mb": 8}).json()["output"]
        == 8 * 1024 * 1024
    )


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed on this host")
def test_node_in_containers(container_api: httpx.Client) -> None:
    code = "exports.handler = async (event) => ({ uid: process.getuid(), echo: event });\n"
    container_api.post(
        "/functions", json={"name": "nodebox", "runtime": "node", "code": code}
    ).raise_for_status()
    assert container_api.post("/functions/nodebox/invoke", json={"a": 1}).json()["output"] == {
        "uid": 65534,
        "echo": {"a": 1},
    }


def test_process_backend_needs_dev_mode(tmp_path: Path) -> None:
    env = {"NOVA_SANDBOX__ALLOW_PROCESS_BACKEND": "false", "NOVA_BACKEND": "process"}
    daemon = DaemonProcess(tmp_path / "data", env=env)
    with pytest.raises(RuntimeError, match="--dev"):
        daemon.start(timeout_s=15)


def test_instance_records_carry_the_image(container_api: httpx.Client) -> None:
    container_api.post(
        "/functions", json={"name": "imaged", "runtime": "python", "code": PID % 1}
    ).raise_for_status()
    container_api.post("/functions/imaged/invoke", json={}).raise_for_status()
    body = container_api.get("/functions/imaged/instances").json()
    assert body["backend"] == "container"
    [instance] = body["items"]
    assert instance["image_id"].startswith("host:")
    assert instance["invocations"] == 1
    assert instance["state"] == "ready"


NETWORK_PROBE = """
import socket
def handler(event, context):
    reached = []
    for host in event["hosts"]:
        try:
            socket.create_connection((host, event["port"]), timeout=2).close()
            reached.append(host)
        except OSError:
            pass
    with open("/proc/net/dev") as devices:
        interfaces = sorted(line.split(":")[0].strip() for line in devices.readlines()[2:])
    return {"interfaces": interfaces, "reached": reached}
"""


def _host_addresses() -> list[str]:
    import subprocess

    listing = subprocess.run(
        ["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=True
    ).stdout
    return [line.split()[3].split("/")[0] for line in listing.splitlines()]


def test_network_true_has_egress_but_no_route_to_the_daemon(container_api: httpx.Client) -> None:
    port = container_api.base_url.port
    hosts = ["127.0.0.1", "10.0.2.2", *_host_addresses()]
    for network in (False, True):
        name = f"net-{str(network).lower()}"
        body = {"name": name, "runtime": "python", "code": NETWORK_PROBE, "network": network}
        container_api.post("/functions", json=body).raise_for_status()
        result = container_api.post(
            f"/functions/{name}/invoke", json={"hosts": hosts, "port": port}
        ).json()
        assert result["error"] is None, result
        assert result["output"]["reached"] == []  # the daemon's API is unreachable either way
        interfaces = result["output"]["interfaces"]
        assert (len(interfaces) > 1) is network, interfaces  # only loopback without network
    stats = container_api.get("/functions/net-true/instances").json()["items"]
    assert len(stats) == 1


KERNEL = "def handler(event, context):\n    return open('/proc/version').read()\n"


def test_backend_is_chosen_per_function(container_api: httpx.Client) -> None:
    from nova.sandbox.gvisor.backend import GvisorBackend
    from nova.sandbox.microvm.backend import MicrovmBackend

    host_kernel = Path("/proc/version").read_text()
    container_api.post(
        "/functions", json={"name": "on-default", "runtime": "python", "code": KERNEL}
    ).raise_for_status()
    assert (
        container_api.post("/functions/on-default/invoke", json={}).json()["output"] == host_kernel
    )
    if GvisorBackend.probe().available:
        body = {"name": "on-gvisor", "runtime": "python", "code": KERNEL, "backend": "gvisor"}
        container_api.post("/functions", json=body).raise_for_status()
        assert (
            container_api.post("/functions/on-gvisor/invoke", json={}).json()["output"]
            != host_kernel
        )
        refused = container_api.patch("/functions/on-gvisor", json={"network": True})
        assert refused.status_code == 422
        assert "gvisor" in refused.json()["error"]["message"]
    microvm = MicrovmBackend.probe()  # where it can run, tests/microvm covers it end to end
    refusals = [("process", "--dev"), ("vmware", "unknown backend")]
    if not microvm.available:
        refusals.append(("microvm", microvm.reason))
    for backend, hint in refusals:
        response = container_api.post(
            "/functions",
            json={"name": f"on-{backend}", "runtime": "python", "code": KERNEL, "backend": backend},
        )
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "Sandbox.Unavailable"
        assert hint in response.json()["error"]["message"]
    backends = {item["name"]: item for item in container_api.get("/runtimes").json()["backends"]}
    assert set(backends) == {"container", "gvisor", "microvm", "process"}
    assert backends["microvm"]["available"] is microvm.available


def test_cold_starts_claim_standby_instances_with_the_functions_limits(
    container_api: httpx.Client,
) -> None:
    # The daemon keeps blank instances started (sandbox.standby_instances, default 2) with a
    # 256 MB limit; a claimed one must take the function's code, id and 128 MB limit.
    code = "def handler(event, context):\n    return len(bytearray(event['mb'] * 1024 * 1024))\n"
    container_api.post(
        "/functions", json={"name": "claimed", "runtime": "python", "code": code, "memory_mb": 128}
    ).raise_for_status()
    first = container_api.post("/functions/claimed/invoke", json={"mb": 1}).json()
    assert first["cold_start"] is True
    assert first["output"] == 1024 * 1024
    [instance] = container_api.get("/functions/claimed/instances").json()["items"]
    assert instance["id"].startswith("claimed-")
    # 200 MB fits the standby's own limit but not the function's 128 MB.
    assert (
        container_api.post("/functions/claimed/invoke", json={"mb": 200}).json()["error"]["type"]
        == "Function.OutOfMemory"
    )


FORGER = """
import os, stat, struct

def handler(event, context):
    if event.get("forge"):
        frame = b'{"type":3,"id":"forged","ok":true,"output":"spoofed"}'
        for fd in map(int, os.listdir("/proc/self/fd")):
            try:
                if stat.S_ISSOCK(os.fstat(fd).st_mode):
                    for _ in range(1000):
                        os.write(fd, struct.pack(">I", len(frame)) + frame)
            except OSError:
                pass
    return {"pid": os.getpid()}
"""


def test_a_function_that_writes_frames_to_its_connection_loses_only_its_instance(
    container_api: httpx.Client,
) -> None:
    # A lone Python worker reads its Exec frames from the daemon's connection (direct mode),
    # so user code can find that socket; forged replies must not disturb the daemon.
    container_api.post(
        "/functions", json={"name": "forger", "runtime": "python", "code": FORGER}
    ).raise_for_status()
    container_api.post(
        "/functions", json={"name": "bystander", "runtime": "python", "code": PID % 1}
    ).raise_for_status()
    assert container_api.post("/functions/forger/invoke", json={}).json()["error"] is None

    forged = container_api.post("/functions/forger/invoke", json={"forge": True}).json()
    after = container_api.post("/functions/forger/invoke", json={}).json()

    assert forged["output"] is None
    assert forged["error"]["type"] == "Runtime.ExitError"
    assert "not pending" in forged["error"]["message"]
    assert after["error"] is None
    assert after["cold_start"] is True  # the flooding instance was replaced
    assert container_api.post("/functions/bystander/invoke", json={}).json()["output"]["v"] == 1
