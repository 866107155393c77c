"""The microVM backend: each instance is a VM with its own guest kernel.

Start-up of one instance::

    daemon ──> qemu-system-x86_64 -M microvm      (setpriv --pdeathsig KILL: dies with us)
                 ├── /dev/vda  rootfs drive        the runtime's debian image + the agent, ro
                 ├── /dev/vdb  code drive          this instance's copy of the code, ro
                 └── virtio-serial port  <──unix socket──> the daemon's agent connection
               guest: /init (busybox, initramfs) loads the virtio modules, mounts the drives
               and a tmpfs /tmp, then execs the agent as PID 1 on the port

The agent speaks the same protocol as in a container; the VM is the isolation boundary (the
function runs as root *inside* it, with no device to reach the host but its drives and the
port). Memory: the guest gets memory_mb plus ``overhead_mb`` for its kernel and the agent;
QEMU's own ~30 MB come on top on the host. vCPUs: one, two from 2 GiB (the host has 2).
No network device: functions with ``network: true`` are refused until user-mode networking
with the host's services blocked is built.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nova.core.errors import SandboxError
from nova.images.ports import ImageRoot, RuntimeImages
from nova.sandbox.base import BackendInfo, InstanceSpec, SandboxInstance
from nova.sandbox.microvm import guest as guest_boot
from nova.sandbox.microvm.accel import Accel
from nova.sandbox.microvm.drives import code_drive, rootfs_drive
from nova.sandbox.microvm.probe import probe
from nova.sandbox.microvm.qemu import QemuDriver, qemu_log_tail
from nova.sandbox.microvm.vmm import Drive, Vm, VmConfig, VmmDriver

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class MicrovmOptions:
    cache_dir: Path  # kernels, initramfs and rootfs drives (content-addressed)
    overhead_mb: int = 64  # guest RAM beyond memory_mb: the guest kernel and the agent
    tmp_mb: int = 512  # /tmp cap; at most half of memory_mb (tmpfs lives in guest RAM)
    max_message_bytes: int = 8 * 1024 * 1024


def guest_memory_mb(memory_mb: int, overhead_mb: int) -> int:
    return memory_mb + overhead_mb


def vcpus_for(memory_mb: int) -> int:
    return 2 if memory_mb >= 2048 else 1


def tmp_mb_for(tmp_mb: int, memory_mb: int) -> int:
    return max(1, min(tmp_mb, memory_mb // 2))


class MicrovmBackend:
    def __init__(
        self,
        options: MicrovmOptions,
        images: RuntimeImages | None = None,
        driver: VmmDriver | None = None,
    ) -> None:
        self._options = options
        self._images = images
        self._info, self._accel = probe()
        self._driver = driver or QemuDriver(self._accel.name)
        self._instances: dict[str, MicrovmInstance] = {}

    @classmethod
    def probe(cls) -> BackendInfo:
        return probe()[0]

    @property
    def info(self) -> BackendInfo:
        return self._info

    @property
    def accel(self) -> Accel:
        return self._accel

    def use_images(self, images: RuntimeImages) -> None:
        self._images = images

    async def start(self, spec: InstanceSpec) -> SandboxInstance:
        if not self._info.available:
            raise SandboxError(f"the microvm backend is unavailable: {self._info.reason}")
        if spec.network:
            raise SandboxError(
                "network access for microvm instances is not available yet: functions with "
                "network: true need the container backend"
            )
        if self._images is None:
            raise SandboxError("the microvm backend has no runtime images to boot from")
        image = await self._images.resolve_debian(spec.runtime)
        config = await asyncio.to_thread(functools.partial(self._prepare, spec, image))
        vm = await self._driver.boot(config)
        try:
            sock = await connect_channel(config.channel, vm)
        except BaseException:
            await self._driver.stop(vm)
            shutil.rmtree(spec.work_dir, ignore_errors=True)
            raise
        instance = MicrovmInstance(spec, vm, sock, self._driver, image.id, self._forget)
        self._instances[spec.instance_id] = instance
        return instance

    def _prepare(self, spec: InstanceSpec, image: ImageRoot) -> VmConfig:
        """Blocking: the guest's kernel, drives and command line (in a worker thread)."""
        cache = self._options.cache_dir
        boot = guest_boot.build_guest(cache / "guest")
        rootfs = rootfs_drive(image.id, image.rootfs, cache / "rootfs")
        spec.work_dir.mkdir(parents=True, exist_ok=True)
        code = code_drive(spec.code_dir, spec.work_dir / "code.ext4")
        return vm_config(self._options, spec, boot, rootfs, code)

    def _forget(self, instance_id: str) -> None:
        self._instances.pop(instance_id, None)

    async def close(self) -> None:
        await asyncio.gather(*(i.kill() for i in list(self._instances.values())))


def vm_config(
    options: MicrovmOptions,
    spec: InstanceSpec,
    boot: guest_boot.GuestBoot,
    rootfs: Path,
    code: Path,
    memory_file: Path | None = None,
) -> VmConfig:
    tmp_mb = tmp_mb_for(options.tmp_mb, spec.memory_mb)
    cmdline = (
        f"{guest_boot.KERNEL_ARGS} nova_tmp_mb={tmp_mb} "
        f"nova_max_message={options.max_message_bytes}"
    )
    work = spec.work_dir
    return VmConfig(
        kernel=boot.kernel,
        initrd=boot.initrd,
        cmdline=cmdline,
        memory_mb=guest_memory_mb(spec.memory_mb, options.overhead_mb),
        vcpus=vcpus_for(spec.memory_mb),
        drives=(Drive(rootfs), Drive(code)),
        channel=work / "agent.sock",
        control=work / "qmp.sock",
        console_log=work / "console.log",
        memory_file=memory_file,
    )


async def connect_channel(path: Path, vm: Vm) -> socket.socket:
    """Connect to the VM's agent port and send the hello byte the guest's /init waits for."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(loop.sock_connect(sock, str(path)), CONNECT_TIMEOUT_S)
        await loop.sock_sendall(sock, guest_boot.HELLO)
    except (OSError, TimeoutError) as exc:
        sock.close()
        raise SandboxError(f"could not connect to the VM's agent port: {exc}") from exc
    if not vm.alive():
        sock.close()
        raise SandboxError(f"the VM exited at start: {qemu_log_tail(vm.config)}")
    return sock


class MicrovmInstance:
    def __init__(
        self,
        spec: InstanceSpec,
        vm: Vm,
        sock: socket.socket,
        driver: VmmDriver,
        image_id: str,
        forget: Callable[[str], None],
    ) -> None:
        self._spec = spec
        self._vm = vm
        self._sock = sock
        self._driver = driver
        self._image_id = image_id
        self._forget = forget
        self._killed = False

    @property
    def instance_id(self) -> str:
        return self._spec.instance_id

    @property
    def sock(self) -> socket.socket:
        return self._sock

    @property
    def pid(self) -> int | None:
        return self._vm.pid

    @property
    def code_dir(self) -> str:
        return guest_boot.CODE_DIR

    @property
    def tmp_dir(self) -> str:
        return guest_boot.TMP_DIR

    @property
    def image_id(self) -> str:
        return self._image_id

    def alive(self) -> bool:
        return self._vm.alive()

    def oom_kills(self) -> int:
        return 0  # the guest kernel's OOM kills are not visible to the host

    async def replace_code(self, source: Path) -> None:
        raise SandboxError("microvm instances cannot reload code in place: the pool replaces them")

    async def kill(self) -> None:
        if self._killed:
            return
        self._killed = True
        await self._driver.stop(self._vm)
        with contextlib.suppress(OSError):
            self._sock.close()
        await asyncio.to_thread(shutil.rmtree, self._spec.work_dir, True)
        self._forget(self._spec.instance_id)


__all__ = ["MicrovmBackend", "MicrovmInstance", "MicrovmOptions"]
