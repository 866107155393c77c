"""A container instance forked from a function template (nova.agent.template).

Host side of one fork: a socketpair whose far end goes to the template, the child's hello with
its pid (SCM_CREDENTIALS: the kernel translates the pid of a process two pid namespaces down),
the move into the instance's own cgroups, then "go". The child is the init of its own pid
namespace: killing it kills everything the instance started, and its cgroup sweep is the
backstop, as for a slow-path instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

from nova.core.errors import SandboxError
from nova.sandbox.base import InstanceSpec
from nova.sandbox.container import bwrap as bw
from nova.sandbox.linux.cgroups import InstanceCgroup
from nova.sandbox.linux.namespaced import discard

HELLO, GO = b"h", b"g"
_UCRED_SIZE = 12  # struct ucred: pid, uid, gid
_EXIT_WAIT_MS = 2000  # SIGKILL to reaped takes well under a millisecond


class ForkedInstance:
    """A SandboxInstance (and SnapshottingInstance: Init came with the fork)."""

    def __init__(
        self,
        spec: InstanceSpec,
        sock: socket.socket,
        process: tuple[int, int],  # (pidfd, pid) of the child, the init of its pid namespace
        cgroup: InstanceCgroup | None,
        image_id: str,
        cpu_quota_us: int,
    ) -> None:
        self._spec = spec
        self._sock = sock
        self._pidfd, self._pid = process
        self._cgroup = cgroup
        self._image_id = image_id
        self._cpu_quota_us = cpu_quota_us
        self.code_ms: float | None = None  # its code is the template's, imported before the fork
        self._killed = False
        self._cpu_timer: asyncio.TimerHandle | None = None
        self.on_kill: Callable[[], None] | None = None  # the snapshot manager counts its forks
        self.start_notice: str | None = None  # the snapshot manager's, for its first invocation

    @property
    def instance_id(self) -> str:
        return self._spec.instance_id

    @property
    def sock(self) -> socket.socket:
        return self._sock

    @property
    def pid(self) -> int | None:
        return self._pid

    @property
    def code_dir(self) -> str:
        return bw.CODE_DIR

    @property
    def tmp_dir(self) -> str:
        return bw.TMP_DIR

    @property
    def image_id(self) -> str:
        return self._image_id

    @property
    def initialised(self) -> bool:
        return True

    async def save_snapshot(self) -> None:
        """Nothing to save: the template it came from is the snapshot."""

    def alive(self) -> bool:
        if self._killed:
            return False
        poller = select.poll()
        poller.register(self._pidfd, select.POLLIN)
        return not poller.poll(0)  # a pidfd turns readable once the process exited

    def adopt(self, spec: InstanceSpec) -> None:
        """Become the start ``spec`` asked for (one forked ahead of need is named then)."""
        self._spec = spec

    def start_boost(self, boost_s: float) -> None:
        """Full CPU for ``boost_s``, then the function's quota (as a slow-path start gets)."""
        if self._cgroup is not None:
            loop = asyncio.get_running_loop()
            self._cpu_timer = loop.call_later(boost_s, self._cgroup.limit_cpu, self._cpu_quota_us)

    def oom_kills(self) -> int:
        return self._cgroup.oom_kills() if self._cgroup is not None else 0

    async def replace_code(self, source: Path) -> None:
        # Its /code is the template's, and its modules were imported from the old code there:
        # the pool replaces it with an instance of the new code instead.
        raise SandboxError("an instance started from a snapshot is replaced, not reloaded")

    async def kill(self) -> None:
        if self._killed:
            return
        self._killed = True
        if self._cpu_timer is not None:
            self._cpu_timer.cancel()
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
        self._sock.close()
        if self.on_kill is not None:
            self.on_kill()
        await asyncio.to_thread(self._teardown)

    def _teardown(self) -> None:
        # The kernel kills the rest of the pid namespace with its init; the outer process the
        # template forked reaps the init. Wait for both, so nothing of it is left on return.
        poller = select.poll()
        poller.register(self._pidfd, select.POLLIN)
        poller.poll(_EXIT_WAIT_MS)
        os.close(self._pidfd)
        deadline = time.monotonic() + _EXIT_WAIT_MS / 1000
        while os.path.exists(f"/proc/{self._pid}") and time.monotonic() < deadline:
            time.sleep(0.001)
        discard(self._spec, self._cgroup)


async def receive_hello(sock: socket.socket, timeout_s: float) -> int:
    """The forked child's pid as the host sees it (SO_PASSCRED must be set before it sent)."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(sock.fileno(), readable)
    try:
        await asyncio.wait_for(ready, timeout_s)
    except TimeoutError as exc:
        raise SandboxError(f"the template did not fork within {timeout_s} s") from exc
    finally:
        loop.remove_reader(sock.fileno())
    data, ancillary, _, _ = sock.recvmsg(1, socket.CMSG_SPACE(_UCRED_SIZE))
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and data == HELLO:
            return int.from_bytes(payload[:4], "little", signed=True)
    raise SandboxError("the template closed the connection instead of forking")


def join_cgroup(cgroup: InstanceCgroup, pid: int) -> None:
    """Move the forked child into its instance's cgroups (a few cgroupfs writes, ~20 µs each).
    Only the child moves: pages it shares with the template stay charged to the template."""
    for procs in cgroup.procs_files:
        procs.write_text(str(pid))
