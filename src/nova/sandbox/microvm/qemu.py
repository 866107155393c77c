"""The QEMU driver: QEMU's ``microvm`` machine (virtio-mmio, direct kernel boot, no PCI, no
firmware) — the same design as Firecracker, from a Debian package.

Snapshots use QEMU's fast path: guest RAM lives in a file QEMU maps shared, so saving a VM
writes only its device state (``x-ignore-shared`` leaves RAM out of the migration stream,
~60 KB); a restore maps the same file *private* (copy-on-write: any number of VMs restore from
one file, each page copied only when its VM writes it) and reads the device state back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nova.core.errors import SandboxError
from nova.sandbox.microvm.snapshots import copy_sparse
from nova.sandbox.microvm.vmm import SnapshotFiles, Vm, VmConfig

QEMU = "qemu-system-x86_64"
# Options measured for the fastest boot under TCG (see guest.KERNEL_ARGS for the kernel's):
# no option ROMs, PIT or PIC. The virtio-serial device must come before the drives: QEMU 7.2's
# microvm lists virtio-mmio slots in ACPI only up to the first empty one, and with the drives
# first the last device is left out.
MACHINE = "microvm,x-option-roms=off,pit=off,pic=off,isa-serial=on,rtc=on"
PORT_NAME = "nova0"
START_TIMEOUT_S = 15.0  # until QEMU serves the channel (it has not booted the guest yet)
MIGRATION_TIMEOUT_S = 10.0


@dataclass(slots=True)
class QemuVm:
    config: VmConfig
    process: subprocess.Popen[bytes]
    _stopped: bool = field(default=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None


class QemuDriver:
    def __init__(self, accel: str, qemu: str | None = None) -> None:
        self.accel = accel
        self._qemu = qemu or shutil.which(QEMU) or QEMU

    @property
    def name(self) -> str:
        return f"qemu-microvm ({self.accel})"

    def argv(self, config: VmConfig, *, restore_from: SnapshotFiles | None = None) -> list[str]:
        """The command line of one VM (a restore runs the same machine, RAM from the snapshot)."""
        argv = [
            self._qemu,
            "-M", MACHINE,
            "-accel", self.accel,
            "-cpu", "host" if self.accel == "kvm" else "qemu64",
            "-m", f"{config.memory_mb}M",
            "-smp", str(config.vcpus),
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-kernel", str(config.kernel),
            "-initrd", str(config.initrd),
            "-append", config.cmdline,
            "-device", "virtio-serial-device",
            "-chardev", f"socket,id=agent,path={config.channel},server=on,wait=off",
            "-device", f"virtserialport,chardev=agent,name={PORT_NAME}",
        ]  # fmt: skip
        for index, drive in enumerate(config.drives):
            read_only = ",readonly=on" if drive.read_only else ""
            argv += [
                "-drive", f"id=d{index},file={drive.path},format=raw,if=none{read_only}",
                "-device", f"virtio-blk-device,drive=d{index}",
            ]  # fmt: skip
        if config.network:
            # slirp: outbound connections are the VMM's own sockets, in its network namespace
            argv += [
                "-netdev", "user,id=net0,ipv6=off",
                "-device", "virtio-net-device,netdev=net0",
            ]  # fmt: skip
        argv += [
            "-qmp", f"unix:{config.control},server=on,wait=off",
            "-serial", f"file:{config.console_log}",
        ]  # fmt: skip
        memory = restore_from.memory if restore_from else config.memory_file
        if memory is not None:
            # share=on while booting: the guest's RAM *is* the file a snapshot keeps.
            # share=off on restore: a private copy-on-write mapping of the snapshot's file.
            share = "off" if restore_from else "on"
            argv += [
                "-object",
                f"memory-backend-file,id=ram,size={config.memory_mb}M,mem-path={memory},"
                f"share={share},prealloc=off",
                "-machine", "memory-backend=ram",
            ]  # fmt: skip
        if restore_from is not None:
            argv += ["-incoming", "defer"]
        return argv

    async def boot(self, config: VmConfig) -> QemuVm:
        if config.memory_file is not None:
            _create_memory_file(config.memory_file, config.memory_mb)
        return await self._spawn(config, self.argv(config))

    async def snapshot(self, vm: Vm, files: SnapshotFiles) -> None:
        memory = vm.config.memory_file
        if memory is None:
            raise SandboxError("a snapshot needs a VM booted with a memory file")
        async with _Qmp(vm.config.control) as qmp:
            await qmp.execute("migrate-set-capabilities", capabilities=_IGNORE_SHARED)
            await qmp.execute("stop")
            try:
                await qmp.execute("migrate", uri=f"exec:cat > {_quote(files.state)}")
                await qmp.wait_migration()
                # Paused, so the RAM file is consistent with the state just written.
                await asyncio.to_thread(copy_sparse, memory, files.memory)
            finally:
                await qmp.execute("cont")

    async def restore(
        self,
        config: VmConfig,
        files: SnapshotFiles,
        before_run: Callable[[Vm], Awaitable[None]],
    ) -> QemuVm:
        vm = await self._spawn(config, self.argv(config, restore_from=files))
        try:
            await before_run(vm)
            async with _Qmp(config.control) as qmp:
                await qmp.execute("migrate-set-capabilities", capabilities=_IGNORE_SHARED)
                await qmp.execute("migrate-incoming", uri=f"exec:cat {_quote(files.state)}")
                await qmp.wait_running()
        except BaseException:
            await self.stop(vm)
            raise
        return vm

    async def stop(self, vm: Vm) -> None:
        assert isinstance(vm, QemuVm), "a VM of another driver"
        if vm.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                vm.process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(vm.process.wait)

    async def _spawn(self, config: VmConfig, argv: list[str]) -> QemuVm:
        for stale in (config.channel, config.control):
            stale.unlink(missing_ok=True)
        # On the loop's thread, not a worker thread: --pdeathsig fires when the *thread* that
        # spawned QEMU ends, and worker threads end when idle.
        process = _popen(config, argv)
        vm = QemuVm(config, process)
        deadline = time.monotonic() + START_TIMEOUT_S
        try:
            while not (config.channel.exists() and config.control.exists()):
                if process.poll() is not None:
                    raise SandboxError(f"QEMU exited at start: {qemu_log_tail(config)}")
                if time.monotonic() > deadline:
                    raise SandboxError(f"QEMU did not start within {START_TIMEOUT_S:.0f} s")
                await asyncio.sleep(0.002)
        except BaseException:  # a cancelled start too: no VM is left behind
            await self.stop(vm)
            raise
        return vm


def _popen(config: VmConfig, argv: list[str]) -> subprocess.Popen[bytes]:
    prefix = ["setpriv", "--pdeathsig", "KILL"] if shutil.which("setpriv") else []
    with open(config.console_log.with_suffix(".qemu.log"), "ab") as log:
        try:
            return subprocess.Popen(  # ~2 ms: fine on the event loop
                [*prefix, *config.wrapper, *argv],
                pass_fds=config.inherit_fds,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        except OSError as exc:
            raise SandboxError(f"could not start QEMU: {exc}") from exc


_IGNORE_SHARED = [{"capability": "x-ignore-shared", "state": True}]


def qemu_log_tail(config: VmConfig, lines: int = 5) -> str:
    """QEMU's own messages and the guest console's last lines, for an error message."""
    parts = []
    for path in (config.console_log.with_suffix(".qemu.log"), config.console_log):
        with contextlib.suppress(OSError):
            text = path.read_text(errors="replace").strip().splitlines()
            if text:
                parts.append(" | ".join(text[-lines:]))
    return " / ".join(parts) or "no output"


def _create_memory_file(path: Path, memory_mb: int) -> None:
    with open(path, "wb") as file:
        file.truncate(memory_mb * 1024 * 1024)  # sparse: pages appear as the guest uses them


def _quote(path: Path) -> str:
    text = str(path)
    if not text.replace("/", "").replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise SandboxError(f"snapshot path {text!r} has characters QEMU's exec: URI cannot take")
    return text


class _Qmp:
    """A minimal QMP client: one connection, one command at a time."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> _Qmp:
        self._reader, self._writer = await asyncio.open_unix_connection(str(self._path))
        await self._read()  # the greeting
        await self.execute("qmp_capabilities")
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()

    async def execute(self, command: str, **arguments: Any) -> Any:
        assert self._writer is not None
        message: dict[str, Any] = {"execute": command}
        if arguments:
            message["arguments"] = arguments
        self._writer.write(json.dumps(message).encode() + b"\n")
        await self._writer.drain()
        while True:
            reply = await self._read()
            if "event" in reply:
                continue
            if "error" in reply:
                raise SandboxError(f"QEMU refused {command}: {reply['error'].get('desc')}")
            return reply.get("return")

    async def wait_migration(self) -> None:
        deadline = time.monotonic() + MIGRATION_TIMEOUT_S
        while time.monotonic() < deadline:
            status = (await self.execute("query-migrate")).get("status")
            if status == "completed":
                return
            if status in ("failed", "cancelled"):
                raise SandboxError(f"saving the VM failed (migration {status})")
            await asyncio.sleep(0.002)
        raise SandboxError("saving the VM timed out")

    async def wait_running(self) -> None:
        deadline = time.monotonic() + MIGRATION_TIMEOUT_S
        status = migration = None
        while time.monotonic() < deadline:
            status = (await self.execute("query-status")).get("status")
            if status == "running":
                return
            if status in ("internal-error", "shutdown", "guest-panicked"):
                raise SandboxError(f"restoring the VM failed (status {status})")
            migration = (await self.execute("query-migrate")).get("status")
            if migration == "failed":
                raise SandboxError("restoring the VM failed: QEMU could not load its state")
            if migration == "completed" and status == "paused":
                # The snapshot was saved from a paused VM, so it loads paused.
                await self.execute("cont")
                continue
            await asyncio.sleep(0.002)
        raise SandboxError(f"restoring the VM timed out (status {status}, migration {migration})")

    async def _read(self) -> dict[str, Any]:
        assert self._reader is not None
        line = await self._reader.readline()
        if not line:
            raise SandboxError("QEMU closed its control socket")
        reply: dict[str, Any] = json.loads(line)
        return reply


def remove_quietly(*paths: Path) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            os.unlink(path)
