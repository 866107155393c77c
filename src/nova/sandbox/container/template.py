"""The host's handle on one function template: a container instance running
``nova.agent.template``, which imported the function once and forks an instance per start.

The template runs in the same sandbox as any container instance (its own namespaces, the
sandbox user, its own cgroups with the function's limits) with two differences: it keeps
CAP_SYS_ADMIN, CAP_NET_ADMIN and CAP_SETPCAP inside its user namespace, and its seccomp filter
is the deny list with ``unshare`` and ``mount`` let through for the arguments its forks use
(seccomp.template_filter: no user or time namespace, no remount that makes anything writable,
no netfilter netlink). That is what a child needs to make its own namespaces; each child then
drops every capability and stacks the instance filter (nova.agent.isolation) before the
function's code runs again. The function's module-level code therefore runs once under the
template filter with those capabilities, over namespaces that hold nothing but this
function's template (README, Snapshots: what that code can do that a handler cannot).
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from typing import Any

import orjson

from nova.agent.protocol import HEADER, encode_message, template_message
from nova.core.errors import SandboxError
from nova.sandbox.base import InstanceSpec
from nova.sandbox.container.forked import GO, ForkedInstance, join_cgroup, receive_hello
from nova.sandbox.linux.cgroups import CgroupLayout, CgroupLimits, InstanceCgroup
from nova.sandbox.linux.namespaced import NamespacedInstance

TEMPLATE_CAPS = ("CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_SETPCAP")
FORK, PING = b"f", b"p"


class FunctionTemplate:
    def __init__(
        self,
        instance: NamespacedInstance,
        cgroups: CgroupLayout | None,
        limits: CgroupLimits,
        fork_timeout_s: float,
    ) -> None:
        self.instance = instance
        self._cgroups = cgroups
        self._limits = limits
        self._fork_timeout_s = fork_timeout_s
        self._spare: InstanceCgroup | None = None  # made ahead: mkdir is off the start path
        self._ping_lock = asyncio.Lock()
        self.sockets: list[int] = []  # fds the init code opened (closed in every fork)

    @property
    def pid(self) -> int | None:
        return self.instance.pid

    def alive(self) -> bool:
        return self.instance.alive()

    def memory_bytes(self) -> int:
        """What the template's cgroup holds: its interpreter, the function's modules and the
        pages its forks still share with it."""
        cgroup = self.instance.cgroup
        return cgroup.memory_bytes() if cgroup is not None else 0

    async def build(self, init: dict[str, Any], seccomp: bytes, tmp_bytes: int) -> None:
        """Make the template import the function; SandboxError if it did not."""
        reply = await ask(self.instance.sock, template_message(init, seccomp, tmp_bytes))
        if not reply.get("ok"):
            error = reply.get("error") or {}
            raise SandboxError(f"template refused: {error.get('message') or reply}")
        self.sockets = list(reply.get("sockets") or [])
        await self.prepare_spare()

    async def prepare_spare(self) -> None:
        if self._cgroups is not None and self._spare is None:
            name = f"fork-{uuid.uuid4().hex[:12]}"
            self._spare = await asyncio.to_thread(self._cgroups.create, name, self._limits)

    async def fork(self, spec: InstanceSpec) -> ForkedInstance:
        """A new instance forked from the template: its own namespaces, /tmp and cgroups
        (without a CPU quota until :meth:`ForkedInstance.start_boost`)."""
        cgroup, self._spare = self._spare, None
        if cgroup is None and self._cgroups is not None:
            cgroup = await asyncio.to_thread(self._cgroups.create, spec.instance_id, self._limits)
        host_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pidfd = -1
        try:
            host_end.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            host_end.setblocking(False)
            try:
                socket.send_fds(self.instance.sock, [FORK], [child_end.fileno()])
            finally:
                child_end.close()
            pid = await receive_hello(host_end, self._fork_timeout_s)
            pidfd = os.pidfd_open(pid)
            if cgroup is not None:
                join_cgroup(cgroup, pid)
            host_end.sendall(GO)
        except (OSError, SandboxError) as exc:
            if pidfd >= 0:
                os.close(pidfd)
            host_end.close()
            if cgroup is not None:
                await asyncio.to_thread(_discard_cgroup, cgroup)
            raise SandboxError(
                f"fork of template {self.instance.instance_id} failed: {exc}"
            ) from exc
        return ForkedInstance(
            spec,
            host_end,
            (pidfd, pid),
            cgroup,
            self.instance.image_id,
            self._limits.cpu_quota_us,
        )

    async def ping(self, timeout_s: float) -> bool:
        """Does the template still answer? (A stopped or wedged one fails its health check.)"""
        loop = asyncio.get_running_loop()
        async with self._ping_lock:
            try:
                await loop.sock_sendall(self.instance.sock, PING)
                return (
                    await asyncio.wait_for(loop.sock_recv(self.instance.sock, 1), timeout_s) == PING
                )
            except (OSError, TimeoutError):
                return False

    async def kill(self) -> None:
        spare, self._spare = self._spare, None
        if spare is not None:
            await asyncio.to_thread(_discard_cgroup, spare)
        await self.instance.kill()


async def ask(sock: socket.socket, message: dict[str, Any]) -> dict[str, Any]:
    """One request to an agent before the pool's connection takes its socket over (a
    template's Template frame, a pre-started instance's Prestart)."""
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(sock, encode_message(message))
    (length,) = HEADER.unpack(await _receive_exactly(sock, HEADER.size))
    reply: dict[str, Any] = orjson.loads(await _receive_exactly(sock, length))
    return reply


async def _receive_exactly(sock: socket.socket, size: int) -> bytes:
    loop = asyncio.get_running_loop()
    data = b""
    while len(data) < size:
        chunk = await loop.sock_recv(sock, size - len(data))
        if not chunk:
            raise SandboxError("the instance's agent exited before it answered (see its log)")
        data += chunk
    return data


def _discard_cgroup(cgroup: InstanceCgroup) -> None:
    cgroup.kill_all()
    cgroup.remove()
