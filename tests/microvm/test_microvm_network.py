"""``network: true`` in a microVM: QEMU's user-mode network, QEMU itself in a network namespace
behind the container backend's per-instance firewall. The container network suite's probes,
remote host and daemon-like listeners, against one networked VM."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from nova.images.manifest import ImageManifest
from nova.images.recipe import ImagePolicy
from nova.images.service import ImageService
from nova.images.store import ImageStore
from nova.sandbox.container.setup import ContainerOptions
from nova.sandbox.microvm import guest
from nova.sandbox.microvm.backend import MicrovmBackend
from nova.sandbox.microvm.layout import MicrovmOptions
from nova.sandbox.network.networks import Networks
from nova.sandbox.network.probe import probe_network
from tests.escape.conftest import MAX_MESSAGE_BYTES, AgentSession
from tests.escape.test_container_escape import _all_gone
from tests.escape.test_container_network import (
    NET_PROBES,
    RemoteHost,
    _daemon_like_listeners,
    _host_addresses,
    _nothing_accepted,
    remote_host,  # noqa: F401 (fixture)
)
from tests.microvm.test_microvm_backend import start

# The session fixtures build runtime images and boot QEMU under TCG: minutes on a cold host.
pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def networks() -> Networks:
    found = probe_network(ContainerOptions())
    if found.support is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"network: true must work in CI: {found.summary}")
        pytest.skip(found.summary)
    return Networks(found.support)


@pytest.fixture(scope="module")
def net_workspace() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="nova-vm-net-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def networked(
    microvm_available: None,
    image_store: ImageStore,
    python_image: ImageManifest,
    vm_cache: Path,
    networks: Networks,
    net_workspace: Path,
    remote_host: RemoteHost,  # noqa: F811 (first: its host-side address is in the firewall)
) -> AsyncIterator[AgentSession]:
    backend = MicrovmBackend(
        MicrovmOptions(vm_cache, max_message_bytes=MAX_MESSAGE_BYTES),
        ImageService(image_store, ImagePolicy(), None),
        networks=networks,
    )
    assert backend.info.supports_network, backend.info.reason
    try:
        yield await start(backend, net_workspace, {"handler.py": NET_PROBES}, network=True)
    finally:
        await backend.close()


async def test_a_networked_vm_reaches_a_remote_host(
    networked: AgentSession,
    remote_host: RemoteHost,  # noqa: F811
) -> None:
    assert await networked.output({"probe": "interfaces"}) == ["eth0", "lo"]
    resolv = await networked.output({"probe": "read", "path": "/etc/resolv.conf"})
    assert resolv == f"nameserver {guest.GUEST_RESOLVER}\n"
    url = f"http://{remote_host.address}:{remote_host.port}/"
    reply = await networked.output({"probe": "http_get", "url": url}, timeout_s=60)
    assert reply == "hello from the remote host"


async def test_the_host_is_unreachable_from_a_networked_vm(
    networked: AgentSession,
    remote_host: RemoteHost,  # noqa: F811
) -> None:
    addresses = _host_addresses()
    assert remote_host.host_side in addresses
    with _daemon_like_listeners() as (anywhere, loopback, listeners):
        ports = (anywhere, loopback)
        hosts = [*addresses, guest.GUEST_GATEWAY]  # QEMU's gateway is QEMU's own loopback
        targets = [[host, port] for host in hosts for port in ports]

        results = await networked.output({"probe": "connect", "targets": targets}, timeout_s=90)

        assert _nothing_accepted(listeners), results
    for target, result in results.items():
        assert result != "ok", target
        if target.startswith("127."):
            assert result == "ECONNREFUSED", (target, result)  # the guest's own loopback


async def test_kill_stops_the_vm_s_network(networked: AgentSession) -> None:
    network = networked.instance.network  # type: ignore[attr-defined]
    slirp = network.slirp_pid
    assert slirp is not None
    await networked.instance.kill()
    assert _all_gone([slirp])
