"""A running microVM instance and the daemon's connection to the agent inside it."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import time
from pathlib import Path
from typing import Protocol

from nova.agent.protocol import HEADER, MsgType, ProtocolError, decode_body, encode_message
from nova.core.errors import SandboxError
from nova.sandbox.base import InstanceSpec
from nova.sandbox.microvm import guest as guest_boot
from nova.sandbox.microvm.layout import discard
from nova.sandbox.microvm.qemu import qemu_log_tail
from nova.sandbox.microvm.vmm import Vm, VmConfig
from nova.sandbox.network.networks import InstanceNetwork

CONNECT_TIMEOUT_S = 5.0


class InstanceOwner(Protocol):
    """What an instance needs of the backend that started it."""

    async def save(self, instance: MicrovmInstance, key: str) -> None: ...

    async def stop_vm(self, vm: Vm) -> None: ...

    def forget(self, instance_id: str) -> None: ...


async def connect_channel(path: Path, vm: Vm, *, hello: bool) -> socket.socket:
    """Connect to the VM's agent port; after a boot, send the hello byte /init waits for."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(loop.sock_connect(sock, str(path)), CONNECT_TIMEOUT_S)
        if hello:
            await loop.sock_sendall(sock, guest_boot.HELLO)
    except (OSError, TimeoutError) as exc:
        sock.close()
        raise SandboxError(f"could not connect to the VM's agent port: {exc}") from exc
    if not vm.alive():
        sock.close()
        raise SandboxError(f"the VM exited at start: {qemu_log_tail(vm.config)}")
    return sock


async def resume_agent(sock: socket.socket, max_message_bytes: int, timeout_s: float) -> None:
    """Send a restored agent the time and fresh RNG seed bytes; wait for its answer."""
    loop = asyncio.get_running_loop()
    message = {
        "type": MsgType.RESUME,
        "id": "resume",
        "time_ns": time.time_ns(),
        "seed": secrets.token_hex(32),
    }
    try:
        async with asyncio.timeout(timeout_s):
            await loop.sock_sendall(sock, encode_message(message, max_message_bytes))
            (length,) = HEADER.unpack(await _read(sock, HEADER.size))
            reply = decode_body(await _read(sock, length))
    except (OSError, TimeoutError, ProtocolError) as exc:
        raise SandboxError(f"the restored agent did not resume: {exc or 'timed out'}") from exc
    if not reply.get("ok"):
        raise SandboxError(f"the restored agent refused Resume: {reply.get('error')}")


async def _read(sock: socket.socket, size: int) -> bytes:
    loop = asyncio.get_running_loop()
    data = b""
    while len(data) < size:
        chunk = await loop.sock_recv(sock, size - len(data))
        if not chunk:
            raise ProtocolError("the agent closed the connection")
        data += chunk
    return data


class MicrovmInstance:
    def __init__(
        self,
        backend: InstanceOwner,
        spec: InstanceSpec,
        vm: Vm,
        sock: socket.socket,
        image_id: str,
        *,
        initialised: bool,
    ) -> None:
        self._backend = backend
        self.spec = spec
        self.vm = vm
        self._sock = sock
        self._image_id = image_id
        self._initialised = initialised
        self.snapshot_key: str | None = None  # set on booted instances a snapshot may follow
        self.code_ms: float | None = None  # a restore reuses the snapshot's code drive
        self.network: InstanceNetwork | None = None  # network: true only; closed with the VM
        self._killed = False

    @property
    def config(self) -> VmConfig:
        return self.vm.config

    @property
    def instance_id(self) -> str:
        return self.spec.instance_id

    @property
    def sock(self) -> socket.socket:
        return self._sock

    @property
    def pid(self) -> int | None:
        return self.vm.pid

    @property
    def code_dir(self) -> str:
        return guest_boot.CODE_DIR

    @property
    def tmp_dir(self) -> str:
        return guest_boot.TMP_DIR

    @property
    def image_id(self) -> str:
        return self._image_id

    @property
    def initialised(self) -> bool:
        return self._initialised

    async def save_snapshot(self) -> None:
        key, self.snapshot_key = self.snapshot_key, None  # once
        if key is not None and not self._killed:
            await self._backend.save(self, key)

    def alive(self) -> bool:
        return self.vm.alive()

    def oom_kills(self) -> int:
        return 0  # the guest kernel's OOM kills are not visible to the host

    async def replace_code(self, source: Path) -> None:
        raise SandboxError("microvm instances cannot reload code in place: the pool replaces them")

    async def kill(self) -> None:
        if self._killed:
            return
        self._killed = True
        await self._backend.stop_vm(self.vm)
        if self.network is not None:  # after the VM: see InstanceNetwork.close
            await asyncio.to_thread(self.network.close)
        with contextlib.suppress(OSError):
            self._sock.close()
        await asyncio.to_thread(discard, self.spec, self.config)
        self._backend.forget(self.spec.instance_id)
