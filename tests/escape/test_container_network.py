"""``network: true`` on the container backend, from inside real instances (issue #3, point 3).

A networked function reaches a "remote host" (an HTTP server in a network namespace this test
creates, 10.200.N.2 behind a veth pair) but nothing of the host it runs on: not the daemon-like
listeners bound here on 0.0.0.0 and 127.0.0.1, through no host address, slirp's gateway or its
DNS forwarder, and nothing of another networked instance. Killing the instance leaves no
slirp4netns process and no namespace (so no firewall) behind.

No traffic leaves this machine: every address probed is the host's own, slirp's virtual ones
(which the instance's firewall refuses before slirp sees them), or the test namespace's. The
DNS forwarder is probed on other ports only where the host's resolver is local too.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nova.core.errors import SandboxError
from nova.sandbox.base import InstanceSpec
from nova.sandbox.container import backend as container
from nova.sandbox.container.backend import ContainerBackend, ContainerInstance
from nova.sandbox.container.setup import ContainerOptions
from nova.sandbox.network import rules
from nova.sandbox.network.networks import Networks
from nova.sandbox.network.probe import probe_network
from tests.escape.conftest import INTERPRETERS, MAX_MESSAGE_BYTES, AgentSession

pytestmark = pytest.mark.escape

NET_PROBES = """
import errno, os, socket, subprocess, threading, urllib.request

_accepted = []


def _errno(call):
    try:
        call()
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc.errno))
    return "ok"


def connect(event):
    return {
        f"{host}:{port}": _errno(lambda: socket.create_connection((host, port), 3).close())
        for host, port in event["targets"]
    }


def http_get(event):
    with urllib.request.urlopen(event["url"], timeout=5) as reply:
        return reply.read().decode()


def interfaces(event):
    return sorted(name for _, name in socket.if_nameindex())


def read(event):
    with open(event["path"]) as f:
        return f.read()


def fds(event):
    return sorted(os.listdir("/proc/self/fd"))


def listen(event):
    server = socket.create_server(("0.0.0.0", 0))

    def serve():
        while True:
            conn, _ = server.accept()
            _accepted.append(1)
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return server.getsockname()[1]


def accepted(event):
    return len(_accepted)


def nft(event):
    done = subprocess.run(["/usr/sbin/nft", *event["args"]], capture_output=True, text=True)
    return {"rc": done.returncode, "stderr": done.stderr.strip()[-200:]}


def handler(event, context):
    return globals()[event["probe"]](event)
"""

REMOTE_SERVER = """
import http.server, sys

class Reply(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"hello from the remote host"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

server = http.server.HTTPServer((sys.argv[1], int(sys.argv[2])), Reply)
print("ready", flush=True)
server.serve_forever()
"""

REFUSED = ("EHOSTUNREACH", "ENETUNREACH")


@pytest.fixture(scope="session")
def network_available(container_available: None) -> None:
    probe = probe_network(ContainerOptions())
    if probe.support is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"network: true must work in CI: {probe.summary}")
        pytest.skip(probe.summary)


class Networked:
    """Starts instances of NET_PROBES on a container backend, with or without network."""

    def __init__(self, backend: ContainerBackend, workspace: Path) -> None:
        self.backend = backend
        self.workspace = workspace
        self.code_dir = workspace / "code" / "net"
        self.code_dir.mkdir(parents=True)
        (self.code_dir / "handler.py").write_text(textwrap.dedent(NET_PROBES))
        self.sessions: list[AgentSession] = []

    async def start(self, *, network: bool = True) -> AgentSession:
        instance_id = f"net-{uuid.uuid4().hex[:10]}"
        spec = InstanceSpec(
            instance_id=instance_id,
            function_name="escape-net",
            runtime="python",
            interpreter=INTERPRETERS["python"],
            code_dir=self.code_dir,
            work_dir=self.workspace / "instances" / instance_id,
            memory_mb=128,
            timeout_s=20,
            network=network,
        )
        session = AgentSession(await self.backend.start(spec))
        self.sessions.append(session)
        reply = await session.init(128, 20)
        assert reply.get("ok"), reply
        return session


@pytest.fixture
async def networked(network_available: None, workspace: Path) -> AsyncIterator[Networked]:
    backend = ContainerBackend(MAX_MESSAGE_BYTES)
    box = Networked(backend, workspace)
    try:
        yield box
    finally:
        await asyncio.gather(*(s.instance.kill() for s in box.sessions))
        await backend.close()


@dataclass(frozen=True)
class RemoteHost:
    address: str
    port: int
    host_side: str  # the host's own address on the veth: must stay unreachable


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


@pytest.fixture(scope="module")
def remote_host() -> Iterator[RemoteHost]:
    """An HTTP server in a network namespace of its own, routed from the host by a veth pair."""
    if os.geteuid() != 0:
        pytest.skip("creating the test's remote host (ip netns, veth) needs root")
    tag = uuid.uuid4().hex[:6]
    namespace, host_if, remote_if = f"nova-remote-{tag}", f"nvt{tag}h", f"nvt{tag}r"
    subnet = random.randint(1, 250)  # 10.200.N.0/24: unlikely to collide with a parallel run
    host_side, remote = f"10.200.{subnet}.1", f"10.200.{subnet}.2"
    server = None
    try:
        _run("ip", "netns", "add", namespace)
        _run("ip", "link", "add", host_if, "type", "veth", "peer", "name", remote_if)
        _run("ip", "link", "set", remote_if, "netns", namespace)
        _run("ip", "addr", "add", f"{host_side}/24", "dev", host_if)
        _run("ip", "link", "set", host_if, "up")
        inside = ("ip", "netns", "exec", namespace)
        _run(*inside, "ip", "addr", "add", f"{remote}/24", "dev", remote_if)
        _run(*inside, "ip", "link", "set", remote_if, "up")
        _run(*inside, "ip", "link", "set", "lo", "up")
        server = subprocess.Popen(
            [*inside, sys.executable, "-c", REMOTE_SERVER, remote, "8080"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready"
        yield RemoteHost(remote, 8080, host_side)
    finally:
        if server is not None:
            server.kill()
            server.wait()
        subprocess.run(["ip", "netns", "del", namespace], check=False, capture_output=True)
        subprocess.run(["ip", "link", "del", host_if], check=False, capture_output=True)


def _host_addresses() -> list[str]:
    """Every address of this host (IPv6 link-local ones need a scope: left out)."""
    found = json.loads(subprocess.run(["ip", "-j", "addr", "show"], capture_output=True).stdout)
    return sorted(
        {
            a["local"]
            for link in found
            for a in link.get("addr_info", [])
            if not (a["family"] == "inet6" and a["local"].startswith("fe80:"))
        }
    )


def _resolvers_are_local(addresses: list[str]) -> bool:
    """slirp maps 10.0.2.3 on *every* port to the host's resolver. Probing it on the listeners'
    ports is only safe when that resolver is on this machine: were the firewall to let the
    probe through, slirp would otherwise connect to another machine (the unit tests check the
    rule; this host's resolver is remote)."""
    with open("/etc/resolv.conf") as f:
        servers = [line.split()[1] for line in f if line.startswith("nameserver ")]
    return all(s.startswith("127.") or s == "::1" or s in addresses for s in servers)


@contextlib.contextmanager
def _daemon_like_listeners() -> Iterator[tuple[int, int, list[socket.socket]]]:
    """Listeners as the daemon would have them: one on every address, one on loopback."""
    anywhere = socket.create_server(("0.0.0.0", 0))
    loopback = socket.create_server(("127.0.0.1", 0))
    for s in (anywhere, loopback):
        s.setblocking(False)
    try:
        yield anywhere.getsockname()[1], loopback.getsockname()[1], [anywhere, loopback]
    finally:
        anywhere.close()
        loopback.close()


def _nothing_accepted(listeners: list[socket.socket]) -> bool:
    for listener in listeners:
        with contextlib.suppress(BlockingIOError):
            listener.accept()[0].close()
            return False
    return True


def _sandbox_init(instance: ContainerInstance) -> str:
    """The pid of bwrap's child: the instance's pid-namespace init, in its network namespace."""
    return Path(f"/proc/{instance.pid}/task/{instance.pid}/children").read_text().split()[0]


def _holders_of_netns(inode: int) -> list[str]:
    """Processes that are in, or hold an fd of, the network namespace with this inode."""
    wanted, found = f"net:[{inode}]", []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/ns/net") == wanted:
                found.append(pid)
                continue
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == wanted:
                        found.append(pid)
    return found


async def test_a_networked_function_reaches_a_remote_host(
    networked: Networked, remote_host: RemoteHost
) -> None:
    session = await networked.start()

    url = f"http://{remote_host.address}:{remote_host.port}/"
    assert await session.output({"probe": "http_get", "url": url}) == "hello from the remote host"
    assert await session.output({"probe": "interfaces"}) == ["lo", rules.TAP_NAME]
    resolv = await session.output({"probe": "read", "path": "/etc/resolv.conf"})
    assert resolv == rules.RESOLV_CONF.decode()


async def test_the_host_is_unreachable_by_every_address(
    networked: Networked, remote_host: RemoteHost
) -> None:
    session = await networked.start()
    addresses = _host_addresses()
    assert remote_host.host_side in addresses  # the veth made here counts too
    with _daemon_like_listeners() as (anywhere, loopback, listeners):
        socket.create_connection(("127.0.0.1", anywhere), 3).close()  # they do listen
        assert not _nothing_accepted(listeners)
        ports = (anywhere, loopback)
        virtual = [str(rules.GATEWAY), "0.0.0.0"]
        if _resolvers_are_local(addresses):
            virtual.append(str(rules.DNS_FORWARDER))
        targets = [[host, port] for host in [*addresses, *virtual] for port in ports]

        results = await session.output({"probe": "connect", "targets": targets}, timeout_s=60)

        assert _nothing_accepted(listeners)
    for target, result in results.items():
        host = target.rsplit(":", 1)[0]
        if host.startswith("127.") or host in ("::1", "0.0.0.0"):
            assert result == "ECONNREFUSED", (target, result)  # the instance's own loopback
        else:
            assert result in REFUSED, (target, result)


async def test_an_address_the_host_gains_later_becomes_unreachable(
    networked: Networked, monkeypatch: pytest.MonkeyPatch
) -> None:
    if os.geteuid() != 0:
        pytest.skip("adding a host address (ip addr add) needs root")
    monkeypatch.setattr(container, "HOST_ADDRESS_REFRESH_S", 0.2)
    session = await networked.start()  # its firewall knows the host's addresses of now
    gained = "192.0.2.123"  # TEST-NET-1, on loopback: reachable only from this host
    _run("ip", "addr", "add", f"{gained}/32", "dev", "lo")
    try:
        with _daemon_like_listeners() as (anywhere, _, _listeners):
            target = {"probe": "connect", "targets": [[gained, anywhere]]}
            deadline = time.monotonic() + 10
            result = (await session.output(target))[f"{gained}:{anywhere}"]
            while result not in REFUSED and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                result = (await session.output(target))[f"{gained}:{anywhere}"]
    finally:
        _run("ip", "addr", "del", f"{gained}/32", "dev", "lo")
    # The running instance's firewall was updated without any new networked start.
    assert result in REFUSED


async def test_the_function_cannot_lift_its_firewall(networked: Networked) -> None:
    session = await networked.start()

    flushed = await session.output({"probe": "nft", "args": ["flush", "ruleset"]})

    assert flushed["rc"] != 0, flushed
    assert "Operation not permitted" in flushed["stderr"], flushed
    target = f"{rules.GATEWAY}:9"
    refused = await session.output({"probe": "connect", "targets": [[str(rules.GATEWAY), 9]]})
    assert refused[target] == "EHOSTUNREACH"


async def test_other_instances_are_unreachable(networked: Networked) -> None:
    listening = await networked.start()
    other = await networked.start()
    port = await listening.output({"probe": "listen"})
    hosts = [str(rules.GUEST_ADDRESS), str(rules.GATEWAY), *_host_addresses()]

    results = await other.output(
        {"probe": "connect", "targets": [[host, port] for host in hosts]}, timeout_s=60
    )

    assert all(result != "ok" for result in results.values()), results
    assert await listening.output({"probe": "accepted"}) == 0
    # Its own listener is reachable from inside, so the probe above could have succeeded.
    own = await listening.output({"probe": "connect", "targets": [["127.0.0.1", port]]})
    assert own == {f"127.0.0.1:{port}": "ok"}


async def test_the_sync_pipes_do_not_reach_the_function(networked: Networked) -> None:
    plain = await networked.start(network=False)
    with_network = await networked.start()

    assert await with_network.output({"probe": "fds"}) == await plain.output({"probe": "fds"})


async def test_kill_leaves_no_slirp_namespace_or_rules(networked: Networked) -> None:
    host_rules = _ruleset()
    session = await networked.start()
    instance = session.instance
    assert isinstance(instance, ContainerInstance)
    assert instance.network is not None
    slirp_pid = instance.network.slirp_pid
    assert slirp_pid is not None
    assert _alive(slirp_pid)
    netns = f"/proc/{_sandbox_init(instance)}/ns/net"
    inode = os.stat(netns).st_ino
    assert "reject" in _ruleset(netns)  # the instance's own firewall

    await instance.kill()
    await instance.kill()  # idempotent

    assert not _alive(slirp_pid)
    assert _holders_of_netns(inode) == []  # the namespace, and with it the firewall, is gone
    assert _ruleset() == host_rules  # the host's own ruleset was never touched


def _ruleset(netns: str | None = None) -> str:
    enter = ["nsenter", f"--net={netns}"] if netns else []
    argv = [*enter, "nft", "list", "ruleset"]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def _alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


async def test_concurrent_networked_starts_each_get_their_own_network(
    networked: Networked,
) -> None:
    sessions = await asyncio.gather(*(networked.start() for _ in range(6)))
    slirps = [s.instance.network.slirp_pid for s in sessions]  # type: ignore[attr-defined]

    for session in sessions:
        assert await session.output({"probe": "interfaces"}) == ["lo", rules.TAP_NAME]
    assert len(set(slirps)) == 6
    await asyncio.gather(*(s.instance.kill() for s in sessions))
    assert not any(_alive(pid) for pid in slirps)


def _broken_slirp(networked: Networked, script: str) -> None:
    """Swap slirp4netns for a stand-in script on this backend."""
    fake = networked.workspace / "fake-slirp4netns"
    fake.write_text(f"#!/bin/sh\n{script}\n")
    fake.chmod(0o755)
    support = networked.backend._networks.support  # type: ignore[union-attr]
    networked.backend._networks = Networks(dataclasses.replace(support, slirp4netns=str(fake)))


def _leftovers(networked: Networked) -> list[str]:
    cgroups = networked.backend._cgroups
    groups = [p.name for p in cgroups.bases["memory"].iterdir() if p.is_dir()] if cgroups else []
    instances = networked.workspace / "instances"
    return [*groups, *(p.name for p in instances.iterdir())] if instances.exists() else groups


async def test_a_failed_network_setup_never_runs_the_agent(networked: Networked) -> None:
    before = _leftovers(networked)
    _broken_slirp(networked, "echo 'cannot attach' >&2; exit 1")

    with pytest.raises(SandboxError, match=r"slirp4netns failed.*cannot attach"):
        await networked.start()

    assert _leftovers(networked) == before
    assert networked.backend._instances == {}


async def test_a_start_cancelled_during_network_setup_leaves_nothing(
    networked: Networked,
) -> None:
    before = _leftovers(networked)
    _broken_slirp(networked, "exec sleep 30")  # never reports ready
    start = asyncio.ensure_future(networked.start())
    await asyncio.sleep(0.5)
    started = time.perf_counter()

    start.cancel()
    with pytest.raises(asyncio.CancelledError):
        await start

    assert time.perf_counter() - started < 3
    assert _leftovers(networked) == before
    assert not _processes_named("sleep 30")


def _processes_named(cmdline: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as f:
            if f.read().replace(b"\0", b" ").strip() == cmdline.encode():
                found.append(pid)
    return found


async def test_network_start_latency(networked: Networked) -> None:
    """Measured, not asserted: start -> Init reply with and without network, median of 15."""
    samples: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(15):
        for network in (False, True):
            started = time.perf_counter()
            session = await networked.start(network=network)
            samples[network].append((time.perf_counter() - started) * 1000)
            await session.instance.kill()
            networked.sessions.remove(session)
    plain, net = (statistics.median(samples[n]) for n in (False, True))
    print(
        f"\ncontainer start -> Init reply: network=false median {plain:.1f} ms, "
        f"network=true median {net:.1f} ms (+{net - plain:.1f} ms; "
        f"p95 {sorted(samples[True])[13]:.1f} ms, n=15)"
    )
