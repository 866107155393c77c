"""Container networking without starting anything: the firewall text, host address parsing,
the slirp4netns/nsenter command lines, the bwrap hooks and InstanceNetwork's bookkeeping."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from nova.core.errors import SandboxError
from nova.sandbox.container import bwrap as bw
from nova.sandbox.network import networks as net
from nova.sandbox.network import rules

FIB_TRIE = """\
Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 192.0.2.0/24 2 0 2
        |-- 192.0.2.0
           /24 link UNICAST
        |-- 192.0.2.2
           /32 host LOCAL
        |-- 192.0.2.255
           /32 link BROADCAST
     |-- 198.51.100.0
        /28 host LOCAL
        /24 link UNICAST
Local:
  +-- 0.0.0.0/0 3 0 5
     |-- 127.0.0.1
        /32 host LOCAL
     |-- 192.0.2.2
        /32 host LOCAL
"""

SUPPORT = net.NetworkSupport(
    "/usr/bin/slirp4netns", "/usr/sbin/nft", "/usr/bin/nsenter", "1.2.0", True, True
)


def _v4(*networks: str) -> tuple[ipaddress.IPv4Network, ...]:
    return tuple(ipaddress.IPv4Network(n) for n in networks)


def test_host_addresses_are_the_local_and_broadcast_routes_collapsed() -> None:
    found = rules.host_addresses(FIB_TRIE)

    # 127.0.0.1 and 127.255.255.255 fall inside 127.0.0.0/8; Main and Local repeat entries.
    assert found == _v4("127.0.0.0/8", "192.0.2.2/32", "192.0.2.255/32", "198.51.100.0/28")


def test_the_current_host_addresses_include_loopback() -> None:
    assert ipaddress.IPv4Network("127.0.0.0/8") in rules.read_host_addresses()


def test_ruleset_allows_dns_only_on_port_53_and_refuses_the_host() -> None:
    text = rules.ruleset(_v4("127.0.0.0/8", "192.0.2.2/32"))
    lines = [line.strip() for line in text.splitlines()]

    dns = lines.index("ip daddr 10.0.2.3 meta l4proto { tcp, udp } th dport 53 accept")
    slirp_net = lines.index(
        "ip daddr { 0.0.0.0/8, 10.0.2.0/24, 169.254.0.0/16 } "
        "reject with icmpx type admin-prohibited"
    )
    assert lines.index('oif "lo" accept') < dns < slirp_net  # first match wins
    assert "elements = { 127.0.0.0/8, 192.0.2.2/32 }" in lines
    assert lines.index("ip daddr @host reject with icmpx type admin-prohibited") > slirp_net
    # IPv4 that is none of the above goes out; everything else (IPv6) is refused.
    assert lines[-4:-2] == [
        "meta nfproto ipv4 accept",
        "reject with icmpx type admin-prohibited",
    ]
    assert "policy drop;" in text


def test_host_set_update_replaces_the_set_atomically() -> None:
    assert rules.host_set_update(_v4("192.0.2.2/32", "127.0.0.0/8")) == (
        "flush set inet nova host\nadd element inet nova host { 127.0.0.0/8, 192.0.2.2/32 }\n"
    )
    assert rules.host_set_update(()) == "flush set inet nova host\n"


@pytest.mark.skipif(shutil.which("nft", path="/usr/sbin:/usr/bin") is None, reason="no nft")
@pytest.mark.skipif(shutil.which("unshare") is None, reason="no unshare")
@pytest.mark.parametrize("host", [_v4("127.0.0.0/8", "192.0.2.2/32"), ()])
def test_nft_accepts_the_ruleset_and_the_update(host: tuple[ipaddress.IPv4Network, ...]) -> None:
    # Loaded for real into a throwaway network namespace (as root, or in a user namespace).
    script = rules.ruleset(host) + rules.host_set_update(host)
    enter = ["unshare", "--net"] if os.geteuid() == 0 else ["unshare", "-r", "--net"]
    done = subprocess.run(
        [*enter, shutil.which("nft", path="/usr/sbin:/usr/bin") or "nft", "-f", "-"],
        input=script,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0 and "Operation not permitted" in done.stderr:
        pytest.skip("no (user) network namespace for nft here")
    assert done.returncode == 0, done.stderr


def test_slirp_argv_names_namespaces_by_fd_and_hardens_slirp() -> None:
    argv = SUPPORT.slirp_argv(netns=11, userns=None, ready=12, exit_fd=13)

    assert argv[0] == "/usr/bin/slirp4netns"
    for flag in (
        "--configure",
        "--disable-host-loopback",
        "--enable-sandbox",
        "--enable-seccomp",
        "--ready-fd=12",
        "--exit-fd=13",
        "--netns-type=path",
        f"--mtu={rules.MTU}",
    ):
        assert flag in argv
    assert argv[-2:] == ["/proc/self/fd/11", "tap0"]
    assert not any(a.startswith("--userns-path") for a in argv)
    assert not any(a.startswith(("--api-socket", "--enable-ipv6")) for a in argv)


def test_unprivileged_slirp_and_nft_enter_the_owning_user_namespace() -> None:
    unprivileged = net.NetworkSupport("s", "nft", "nsenter", "1.2.0", False, False)

    slirp = unprivileged.slirp_argv(netns=11, userns=14, ready=12, exit_fd=13)
    assert "--userns-path=/proc/self/fd/14" in slirp
    assert "--enable-sandbox" not in slirp
    assert unprivileged.nft_argv(11, 14) == [
        "nsenter",
        "--user=/proc/self/fd/14",
        "--preserve-credentials",
        "--net=/proc/self/fd/11",
        "--",
        "nft",
        "-f",
        "-",
    ]
    assert SUPPORT.nft_argv(11, None) == [
        "/usr/bin/nsenter",
        "--net=/proc/self/fd/11",
        "--",
        "/usr/sbin/nft",
        "-f",
        "-",
    ]


LAYOUT = bw.RootLayout((("usr/bin", "/bin"),), (), ("/etc/ld.so.cache", "/etc/resolv.conf"))


def _argv(mounts: bw.InstanceMounts) -> list[str]:
    return bw.bwrap_argv("/usr/bin/bwrap", LAYOUT, mounts, tmp_bytes=1 << 20, env={}, command=["x"])


def test_bwrap_waits_for_the_network_and_uses_the_generated_resolv_conf() -> None:
    mounts = bw.InstanceMounts("/c", "/i", "/a", 10, {"/etc/resolv.conf": 11}, sync_fds=(12, 13))
    argv = _argv(mounts)

    assert mounts.fds == (10, 11, 12, 13)
    info = argv.index("--info-fd")
    assert argv[info : info + 4] == ["--info-fd", "12", "--block-fd", "13"]
    assert info < argv.index("--")
    data = argv.index("--ro-bind-data")
    assert argv[data : data + 3] == ["--ro-bind-data", "11", "/etc/resolv.conf"]
    host_binds = [argv[i + 1] for i, a in enumerate(argv) if a == "--ro-bind-try"]
    assert host_binds == ["/etc/ld.so.cache"]  # the host's resolv.conf is not bound over it


def test_bwrap_without_network_is_unchanged() -> None:
    argv = _argv(bw.InstanceMounts("/c", "/i", "/a", 10, {"/etc/passwd": 11}))

    assert "--info-fd" not in argv
    assert "--block-fd" not in argv
    host_binds = [argv[i + 1] for i, a in enumerate(argv) if a == "--ro-bind-try"]
    assert host_binds == ["/etc/ld.so.cache", "/etc/resolv.conf"]


def test_resolv_conf_points_at_slirps_dns_forwarder() -> None:
    assert rules.RESOLV_CONF.decode().splitlines()[0] == "nameserver 10.0.2.3"


def _open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


def test_instance_network_inherited_ends_are_high_and_close_is_idempotent(tmp_path: Path) -> None:
    before = _open_fds()
    network = net.Networks(SUPPORT).open("i-1", tmp_path / "network.log")
    info_fd, block_fd = network.sync_fds
    assert min(info_fd, block_fd) >= 10  # clear of the wrapper's fd 3 redirection
    assert not os.get_inheritable(info_fd)  # Popen's pass_fds makes them inheritable

    network.close_child_ends()
    network.close()
    network.close()

    assert _open_fds() == before


def test_attach_fails_when_the_sandbox_exits_before_reporting(tmp_path: Path) -> None:
    network = net.Networks(SUPPORT).open("i-2", tmp_path / "network.log")
    network.close_child_ends()  # as if bwrap had died: the info pipe reaches EOF

    with pytest.raises(SandboxError, match="exited before its network was up"):
        network.attach_blocking()
    network.close()
    assert network.slirp_pid is None


def test_attach_after_close_is_refused(tmp_path: Path) -> None:
    network = net.Networks(SUPPORT).open("i-3", tmp_path / "network.log")
    info_fd = network.sync_fds[0]
    os.write(info_fd, b'{"child-pid": %d, "net-namespace": 1}' % os.getpid())
    network.close()

    with pytest.raises(SandboxError):
        network.attach_blocking()


class _Recorder(net.InstanceNetwork):
    def __init__(self, networks: net.Networks, log: Path) -> None:
        super().__init__(networks, "recorder", log)
        self.updates: list[tuple[ipaddress.IPv4Network, ...]] = []

    def update_host(self, host: Sequence[ipaddress.IPv4Network]) -> None:
        self.updates.append(tuple(host))


def test_live_firewalls_follow_host_address_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    addresses = [_v4("127.0.0.0/8")]
    monkeypatch.setattr(rules, "read_host_addresses", lambda: addresses[-1])
    networks = net.Networks(SUPPORT)
    assert networks.host_addresses() == _v4("127.0.0.0/8")
    live = _Recorder(networks, tmp_path / "log")
    assert networks._add(live) == _v4("127.0.0.0/8")

    networks.refresh()
    assert live.updates == []  # unchanged: nothing to do
    addresses.append(_v4("127.0.0.0/8", "203.0.113.7/32"))
    networks.refresh()
    assert live.updates == [_v4("127.0.0.0/8", "203.0.113.7/32")]

    live.close()  # leaves the registry
    addresses.append(_v4("127.0.0.0/8"))
    networks.refresh()
    assert len(live.updates) == 1


async def test_watching_the_host_updates_live_firewalls_periodically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    addresses = [_v4("127.0.0.0/8")]
    monkeypatch.setattr(rules, "read_host_addresses", lambda: addresses[-1])
    networks = net.Networks(SUPPORT)
    live = _Recorder(networks, tmp_path / "log")
    networks._add(live)
    watch = asyncio.create_task(networks.watch_host(0.01))
    try:
        addresses.append(_v4("127.0.0.0/8", "198.51.100.9/32"))  # an interface came up
        for _ in range(200):
            if live.updates:
                break
            await asyncio.sleep(0.01)
    finally:
        watch.cancel()
    assert live.updates == [_v4("127.0.0.0/8", "198.51.100.9/32")]


def test_loopback_wait_returns_once_lo_is_up_and_fails_for_a_gone_process() -> None:
    net._wait_for_loopback(os.getpid(), deadline=0)  # this netns' lo is up: no wait at all

    with pytest.raises(SandboxError, match="exited before"):
        net._wait_for_loopback(2**22 + 1, deadline=0)  # above pid_max: never a process


def test_a_failing_firewall_load_is_reported_with_nfts_error(tmp_path: Path) -> None:
    fake = tmp_path / "nsenter"
    fake.write_text("#!/bin/sh\ncat >/dev/null\necho 'Error: syntax error' >&2\nexit 1\n")
    fake.chmod(0o755)
    support = net.NetworkSupport("s", "/usr/sbin/nft", str(fake), "1.2.0", True, True)
    network = net.Networks(support).open("i-4", tmp_path / "network.log")
    netns = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        nft = network._start_nft(netns, rules.ruleset(()))
        with pytest.raises(SandboxError, match="firewall of i-4 failed: Error: syntax error"):
            network._finish_nft(nft, deadline=time.monotonic() + 5)
        assert nft.stderr is not None
        nft.stderr.close()
    finally:
        os.close(netns)
        network.close()
