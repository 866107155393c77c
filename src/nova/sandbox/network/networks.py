"""Outbound network for container instances (``network: true``): slirp4netns plus a firewall in
the instance's own network namespace. Instances without network never touch this module.

One instance, from spawn to the agent's first instruction::

    bwrap --info-fd I --block-fd B      makes the user + net namespaces, writes the sandbox's
        │                               pid and namespace inodes to I, then waits for a byte on B
        v
    daemon (a worker thread)            opens /proc/PID/ns/net and checks its inode against I's
        ├── nsenter --net nft -f -      the instance firewall (nova.sandbox.network.rules)
        └── slirp4netns --configure     tap0 inside, sockets on the host outside; started once
        v                               bwrap has set up lo (see _wait_for_loopback)
    daemon writes B                     both done: only now bwrap executes the agent

Why slirp4netns: it needs no host configuration at all (no bridge, no NAT rules, no
ip_forward), works for an unprivileged daemon where /dev/net/tun allows it, and its process is
the only thing on the host side, so tearing an instance down is killing one process. It runs
with ``--enable-sandbox`` (its own mount namespace, capabilities dropped) and
``--enable-seccomp`` where the probe found they work, because it parses packets the function
writes. It joins the instance's cgroups, so its memory and CPU count against the instance.

Teardown: the sandbox is killed first (so bwrap can never be released half-set-up: an EOF on
B would let it run), then slirp4netns (its exit fd closes and it is SIGKILLed). The firewall
lives only in the instance's namespace, which disappears with its last process and the last
tap fd: nothing is ever added to the host's own ruleset.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import ipaddress
import json
import logging
import os
import select
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nova.core.errors import SandboxError
from nova.sandbox.network import rules

logger = logging.getLogger(__name__)

_NS_GET_USERNS = 0xB701  # _IO(0xb7, 0x1): the user namespace that owns a namespace fd
_FIRST_INHERITED_FD = 10  # as container/setup.py: above what the wrapper's redirections touch
ATTACH_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class NetworkSupport:
    """The tools found by the probe (nova.sandbox.network.probe), and how to run them."""

    slirp4netns: str
    nft: str
    nsenter: str
    version: str
    hardened: bool  # slirp4netns --enable-sandbox --enable-seccomp work here
    rootful: bool  # the daemon is root: no need to enter the instance's user namespace

    def slirp_argv(self, netns: int, userns: int | None, ready: int, exit_fd: int) -> list[str]:
        # The namespaces are named by fds the daemon holds (/proc/self/fd/N in slirp's own
        # process): a pid could be reused, and /proc/PID/ns/user is bwrap's *nested* user
        # namespace (--disable-userns), not the one that owns the network namespace.
        argv = [
            self.slirp4netns,
            "--configure",
            f"--mtu={rules.MTU}",
            "--disable-host-loopback",
            f"--ready-fd={ready}",
            f"--exit-fd={exit_fd}",
            "--netns-type=path",
        ]
        if self.hardened:
            argv += ["--enable-sandbox", "--enable-seccomp"]
        if userns is not None:
            argv.append(f"--userns-path=/proc/self/fd/{userns}")
        return [*argv, f"/proc/self/fd/{netns}", rules.TAP_NAME]

    def nft_argv(self, netns: int, userns: int | None) -> list[str]:
        argv = [self.nsenter]
        if userns is not None:  # as the namespace's owner: full capabilities inside it
            argv += [f"--user=/proc/self/fd/{userns}", "--preserve-credentials"]
        return [*argv, f"--net=/proc/self/fd/{netns}", "--", self.nft, "-f", "-"]


class Networks:
    """Every networked instance of one backend, and the host addresses their firewalls block."""

    def __init__(self, support: NetworkSupport) -> None:
        self.support = support
        self._lock = threading.Lock()
        self._live: set[InstanceNetwork] = set()
        self._host: tuple[ipaddress.IPv4Network, ...] = ()

    def open(self, instance_id: str, log_path: Path) -> InstanceNetwork:
        return InstanceNetwork(self, instance_id, log_path)

    def host_addresses(self) -> tuple[ipaddress.IPv4Network, ...]:
        """The host's addresses now. When they changed since the last look (an interface came
        up), the firewalls of running instances are updated too, so no instance keeps a route
        to an address the daemon gained after it started."""
        current = rules.read_host_addresses()
        with self._lock:
            stale = list(self._live) if current != self._host else []
            self._host = current
        for network in stale:
            network.update_host(current)
        return current

    def refresh(self) -> None:
        """Re-read the host's addresses now (for a periodic caller; blocking, ~5 ms per live
        instance when they changed, ~0.1 ms otherwise)."""
        self.host_addresses()

    async def watch_host(self, every_s: float) -> None:
        """Refresh every ``every_s`` until cancelled: a running instance then loses its route to
        an address the host gained (an interface coming up) within that time, instead of only
        at the next networked start."""
        while True:
            await asyncio.sleep(every_s)
            try:
                await asyncio.to_thread(self.refresh)
            except OSError as exc:  # /proc unreadable for a moment: try again next time
                logger.warning("could not re-read the host's addresses: %s", exc)

    def _add(self, network: InstanceNetwork) -> tuple[ipaddress.IPv4Network, ...]:
        """Track a network whose firewall is loaded; return the host addresses known now."""
        with self._lock:
            self._live.add(network)
            return self._host

    def _remove(self, network: InstanceNetwork) -> None:
        with self._lock:
            self._live.discard(network)


class InstanceNetwork:
    """One instance's slirp4netns and firewall. Created before the sandbox is spawned (it owns
    the two pipes bwrap synchronises on), attached once bwrap runs, closed with the instance."""

    def __init__(self, networks: Networks, instance_id: str, log_path: Path) -> None:
        self._networks = networks
        self._support = networks.support
        self.instance_id = instance_id
        self._log_path = log_path
        self._lock = threading.Lock()  # guards the fields below against close()
        self._attaching = threading.Lock()  # held for the whole attach: close() waits for it
        self._closed = False
        self._slirp: subprocess.Popen[bytes] | None = None
        self._netns: int | None = None
        self._userns: int | None = None
        self._exit_w: int | None = None
        self._info_r, info_w = _pipe(child_end="write")
        block_r, self._block_w = _pipe(child_end="read")
        self._child_fds: list[int] = [info_w, block_r]

    @property
    def sync_fds(self) -> tuple[int, int]:
        """(info fd, block fd) for bwrap: the ends the sandbox chain inherits."""
        return self._child_fds[0], self._child_fds[1]

    @property
    def slirp_pid(self) -> int | None:
        return self._slirp.pid if self._slirp is not None else None

    def close_child_ends(self) -> None:
        """The daemon's copies of the inherited ends, once bwrap has them (or never will)."""
        for fd in self._child_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._child_fds = [-1, -1]

    async def attach(self, procs_files: Sequence[str | Path]) -> None:
        """Give the waiting sandbox its network, then let it run. Shielded: when the start is
        cancelled the thread finishes (bounded) and the caller's kill() waits for it."""
        work = asyncio.ensure_future(asyncio.to_thread(self.attach_blocking, procs_files))
        await asyncio.shield(work)

    def attach_blocking(self, procs_files: Sequence[str | Path] = ()) -> None:
        with self._attaching:
            try:
                self._attach(procs_files, time.monotonic() + ATTACH_TIMEOUT_S)
            except SandboxError:
                raise
            except (OSError, ValueError, KeyError, subprocess.SubprocessError) as exc:
                raise SandboxError(
                    f"could not set up the network of {self.instance_id}: {exc}"
                ) from exc

    def _attach(self, procs_files: Sequence[str | Path], deadline: float) -> None:
        with self._lock:
            self._check_open()  # closed already: its fds are gone
        info = self._read_info(deadline)
        netns = os.open(f"/proc/{int(info['child-pid'])}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        with self._lock:
            self._netns = netns
            self._check_open()
        if os.fstat(netns).st_ino != int(info["net-namespace"]):
            raise SandboxError(f"instance {self.instance_id} exited before its network was set up")
        if not self._support.rootful:
            userns = fcntl.ioctl(netns, _NS_GET_USERNS)
            with self._lock:
                self._userns = userns
        host = self._networks.host_addresses()
        firewall = self._start_nft(netns, rules.ruleset(host))  # loads while slirp starts
        ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
        exit_r, exit_w = os.pipe2(os.O_CLOEXEC)
        try:
            # slirp's --configure sets lo up; if that happens before bwrap has added lo's
            # address itself, the kernel adds it first and bwrap dies on EEXIST. So wait.
            _wait_for_loopback(int(info["child-pid"]), deadline)
            with self._lock:
                self._exit_w = exit_w
                self._check_open()
                self._slirp = self._spawn_slirp(netns, ready_w, exit_r)
            os.close(ready_w)
            os.close(exit_r)
            ready_w = exit_r = -1
            for procs in procs_files:  # slirp's work for the instance counts against it
                Path(procs).write_text(str(self._slirp.pid))
            self._finish_nft(firewall, deadline)
            self._wait_ready(ready_r, deadline)
        finally:
            for fd in (ready_r, ready_w, exit_r):
                if fd >= 0:
                    os.close(fd)
            if firewall.poll() is None:
                firewall.kill()
            firewall.wait()
            if firewall.stderr is not None:
                firewall.stderr.close()
        latest = self._networks._add(self)
        if latest != host:  # the host's addresses changed while this one was being set up
            self.update_host(latest)
        with self._lock:
            self._check_open()
            os.write(self._block_w, b"1")  # bwrap reads one byte, then execs the agent

    def _check_open(self) -> None:
        if self._closed:
            raise SandboxError(f"instance {self.instance_id} stopped while starting its network")

    def _read_info(self, deadline: float) -> dict[str, Any]:
        # One JSON object ({"child-pid": N, "net-namespace": INODE, ...}), then bwrap closes
        # the fd; EOF before a whole object means the sandbox failed to start.
        data = b""
        while True:
            if not _readable(self._info_r, deadline):
                raise SandboxError(f"bwrap of {self.instance_id} did not report its namespaces")
            chunk = os.read(self._info_r, 4096)
            if not chunk:
                raise SandboxError(f"instance {self.instance_id} exited before its network was up")
            data += chunk
            with contextlib.suppress(ValueError):
                info: dict[str, Any] = json.loads(data)
                return info

    def _spawn_slirp(self, netns: int, ready_w: int, exit_r: int) -> subprocess.Popen[bytes]:
        argv = self._support.slirp_argv(netns, self._userns, ready_w, exit_r)
        inherited = [netns, ready_w, exit_r]
        if self._userns is not None:
            inherited.append(self._userns)
        log = os.open(self._log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                pass_fds=inherited,
                env={"PATH": "/usr/bin:/bin"},
                start_new_session=True,  # the daemon's Ctrl-C must not reach it
            )
        finally:
            os.close(log)

    def _wait_ready(self, ready_r: int, deadline: float) -> None:
        # slirp writes "1" once tap0 is configured, or exits (EOF) when it cannot.
        if not _readable(ready_r, deadline) or os.read(ready_r, 1) != b"1":
            raise SandboxError(
                f"slirp4netns failed for {self.instance_id}: {self._log_tail() or 'no output'}"
            )

    def _start_nft(self, netns: int, script: str) -> subprocess.Popen[bytes]:
        # The script goes in through a pipe filled beforehand (~1 KB, below the pipe buffer),
        # so starting nft never blocks and the caller can do other work while it loads.
        stdin_r, stdin_w = os.pipe2(os.O_CLOEXEC)
        try:
            try:
                os.write(stdin_w, script.encode())
            finally:
                os.close(stdin_w)
            inherited = [netns] if self._userns is None else [netns, self._userns]
            return subprocess.Popen(
                self._support.nft_argv(netns, self._userns),
                stdin=stdin_r,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                pass_fds=inherited,
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            )
        finally:
            os.close(stdin_r)

    def _finish_nft(self, nft: subprocess.Popen[bytes], deadline: float) -> None:
        _, stderr = nft.communicate(timeout=max(0.1, deadline - time.monotonic()))
        if nft.returncode != 0:
            error = stderr.decode(errors="replace").strip()[-500:]
            raise SandboxError(f"the network firewall of {self.instance_id} failed: {error}")

    def update_host(self, host: Sequence[ipaddress.IPv4Network]) -> None:
        with self._lock:
            if self._closed or self._netns is None:
                return
            try:
                nft = self._start_nft(self._netns, rules.host_set_update(host))
                try:
                    self._finish_nft(nft, time.monotonic() + 5)
                finally:
                    if nft.poll() is None:
                        nft.kill()
                        nft.wait()
            except (OSError, SandboxError, subprocess.SubprocessError) as exc:
                logger.error("could not update the firewall of %s: %s", self.instance_id, exc)

    def close(self) -> None:
        """Stop slirp4netns and release everything (blocking, idempotent). Kill the sandbox
        first: bwrap runs on as soon as the block fd closes."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            slirp, exit_w = self._slirp, self._exit_w
            self._exit_w = None
        self._networks._remove(self)
        if exit_w is not None:
            os.close(exit_w)  # slirp's exit fd: it leaves by itself on EOF
        if slirp is not None:
            with contextlib.suppress(ProcessLookupError):
                slirp.kill()
            try:
                slirp.wait(timeout=5)
            except subprocess.TimeoutExpired:
                logger.error("slirp4netns of %s ignored SIGKILL for 5 s", self.instance_id)
        with self._attaching:  # an attach still running ends quickly once slirp is gone
            self.close_child_ends()
            for fd in (self._info_r, self._block_w, self._netns, self._userns):
                if fd is not None and fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._netns = self._userns = None

    def _log_tail(self, limit: int = 500) -> str:
        try:
            data = self._log_path.read_bytes()[-limit:]
        except OSError:
            return ""
        return data.decode(errors="replace").strip()


def _pipe(child_end: str) -> tuple[int, int]:
    """A close-on-exec pipe whose child end is numbered at least _FIRST_INHERITED_FD."""
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    low = write_end if child_end == "write" else read_end
    try:
        high = fcntl.fcntl(low, fcntl.F_DUPFD_CLOEXEC, _FIRST_INHERITED_FD)
    except OSError:
        os.close(read_end)
        os.close(write_end)
        raise
    os.close(low)
    return (read_end, high) if child_end == "write" else (high, write_end)


def _wait_for_loopback(pid: int, deadline: float) -> None:
    """Until bwrap has brought the instance's lo up: only then does its network namespace's
    routing table hold 127.0.0.0/8 (while lo is down it holds 127.0.0.1/32 at most)."""
    loopback = ipaddress.IPv4Network("127.0.0.0/8")
    while True:
        try:
            with open(f"/proc/{pid}/net/fib_trie") as f:
                if loopback in rules.host_addresses(f.read()):
                    return
        except FileNotFoundError:
            raise SandboxError("the instance exited before its network was set up") from None
        if time.monotonic() > deadline:
            raise SandboxError("the instance's loopback never came up")
        time.sleep(0.0005)


def _readable(fd: int, deadline: float) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP)
    while True:
        remaining_ms = (deadline - time.monotonic()) * 1000
        if remaining_ms <= 0:
            return False
        if poller.poll(remaining_ms):
            return True
