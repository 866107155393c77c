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
No network device unless ``network: true``: then a virtio-net device on QEMU's user-mode
network, QEMU itself in a network namespace behind the instance firewall (:meth:`_network_for`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import socket
import time
from dataclasses import dataclass, replace
from pathlib import Path

from nova.agent.protocol import HEADER, MsgType, ProtocolError, decode_body, encode_message
from nova.core.counters import DaemonCounters
from nova.core.errors import SandboxError
from nova.images.ports import ImageRoot, RuntimeImages
from nova.images.progress import BuildProgress, ProgressSink
from nova.sandbox.base import BackendInfo, InstanceSpec, SandboxInstance
from nova.sandbox.microvm import guest as guest_boot
from nova.sandbox.microvm.accel import Accel
from nova.sandbox.microvm.drives import code_drive, rootfs_drive
from nova.sandbox.microvm.probe import probe
from nova.sandbox.microvm.qemu import QemuDriver, qemu_log_tail
from nova.sandbox.microvm.snapshots import Snapshot, SnapshotStore, snapshot_key
from nova.sandbox.microvm.vmm import Drive, SnapshotFiles, Vm, VmConfig, VmmDriver
from nova.sandbox.network import rules
from nova.sandbox.network.networks import InstanceNetwork, Networks

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0
HOST_ADDRESS_REFRESH_S = 10.0  # how often networked VMs' firewalls re-read host addresses


@dataclass(frozen=True, slots=True)
class MicrovmOptions:
    cache_dir: Path  # kernels, initramfs and rootfs drives (content-addressed)
    overhead_mb: int = 64  # guest RAM beyond memory_mb: the guest kernel and the agent
    tmp_mb: int = 512  # /tmp cap; at most half of memory_mb (tmpfs lives in guest RAM)
    pids_max: int = 64  # processes + threads in the guest per invocation it runs at once
    max_message_bytes: int = 8 * 1024 * 1024
    snapshots: bool = True  # save initialised VMs and restore later starts from them
    snapshots_max_bytes: int = 4 << 30  # disk for snapshots; the least recently used go past it
    resume_timeout_s: float = 10.0  # a restored agent's answer to Resume


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
        counters: DaemonCounters | None = None,
        networks: Networks | None = None,
    ) -> None:
        self._options = options
        self._images = images
        self._info, self._accel = probe()
        bwrap = shutil.which("bwrap")
        self._networks = networks if bwrap is not None else None
        self._bwrap = bwrap or "bwrap"
        self._host_watch: asyncio.Task[None] | None = None  # from the first networked start
        if self._info.available:
            self._info = replace(
                self._info,
                reason=f"{self._info.reason}; {_network_summary(self._networks is not None)}",
                supports_network=self._networks is not None,
            )
        self._driver = driver or QemuDriver(self._accel.name)
        self._instances: dict[str, MicrovmInstance] = {}
        self.snapshots = SnapshotStore(options.cache_dir / "snapshots", options.snapshots_max_bytes)
        self.counters = counters or DaemonCounters()
        self._saving: set[asyncio.Task[None]] = set()
        self._bases: dict[str, _Base] = {}  # image id -> its kernel and rootfs drive

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
        if spec.network and self._networks is None:
            raise SandboxError(
                f"network: true is not available for microvm instances here ({self._info.reason})"
            )
        if self._images is None:
            raise SandboxError("the microvm backend has no runtime images to boot from")
        image = await self._images.resolve_debian(spec.runtime)
        base = self._bases.get(image.id)
        if base is None:
            # Hashing the kernel and the agent costs ~20-30 ms: once per image and process.
            base = self._bases[image.id] = await asyncio.to_thread(self._prepare_base, image)
        key = None
        # A networked VM runs in its own namespace: not worth a snapshot of its own kind.
        if self._options.snapshots and spec.init_key is not None and not spec.network:
            key = snapshot_key(
                spec.init_key,
                base.boot.id,
                base.rootfs.name,
                str(self._options.overhead_mb),
                str(self._options.tmp_mb),
                str(self._options.pids_max),
            )
            restored = await self._try_restore(spec, image.id, base, key)
            if restored is not None:
                return restored
        return await self._boot(spec, image.id, base, key)

    def _prepare_base(self, image: ImageRoot, progress: ProgressSink | None = None) -> _Base:
        """Blocking (a worker thread): the guest kernel and the rootfs drive, both cached."""
        report = progress or (lambda _progress: None)
        cache = self._options.cache_dir

        def guest_progress(fraction: float, message: str) -> None:
            report(BuildProgress("vm", fraction * 0.3, f"guest kernel: {message}"))

        boot = guest_boot.build_guest(cache / "guest", guest_progress)
        report(BuildProgress("vm", 0.3, "the rootfs drive (mkfs.ext4 -d and the agent)"))
        rootfs = rootfs_drive(image.id, image.rootfs, cache / "rootfs")
        report(BuildProgress("vm", 1.0, "ready"))
        return _Base(boot, rootfs)

    def build_drives(self, image: ImageRoot, progress: ProgressSink) -> str:
        """`nova image build --vm`: what :meth:`start` would build on the first cold start."""
        base = self._prepare_base(image, progress)
        return (
            f"guest {base.boot.id} (kernel {base.boot.kernel_version}), "
            f"rootfs drive {base.rootfs.name}"
        )

    async def _boot(
        self, spec: InstanceSpec, image_id: str, base: _Base, key: str | None
    ) -> MicrovmInstance:
        def prepare() -> tuple[VmConfig, float]:
            spec.work_dir.mkdir(parents=True, exist_ok=True)
            placing = time.perf_counter()
            code = code_drive(spec.code_dir, spec.work_dir / "code.ext4")
            code_ms = (time.perf_counter() - placing) * 1000
            memory = _memory_file(spec) if key is not None else None
            return vm_config(self._options, spec, base.boot, base.rootfs, code, memory), code_ms

        config, code_ms = await asyncio.to_thread(prepare)
        network = None
        if spec.network and self._networks is not None:
            network, config = self._network_for(spec, config, self._networks)
        try:
            vm = await self._boot_vm(config, network)
        except BaseException:
            if network is not None:
                await asyncio.to_thread(network.close)
            _discard(spec, config)
            raise
        try:
            sock = await connect_channel(config.channel, vm, hello=True)
        except BaseException:
            await self._driver.stop(vm)
            if network is not None:
                await asyncio.to_thread(network.close)
            _discard(spec, config)
            raise
        instance = MicrovmInstance(self, spec, vm, sock, image_id, initialised=False)
        instance.code_ms = code_ms
        instance.network = network
        instance.snapshot_key = key
        self._instances[spec.instance_id] = instance
        return instance

    def _network_for(
        self, spec: InstanceSpec, config: VmConfig, networks: Networks
    ) -> tuple[InstanceNetwork, VmConfig]:
        """The VMM in a network namespace of its own, whose only way out is the instance's
        slirp4netns behind the container backend's firewall: QEMU's user-mode network makes
        the guest's connections as QEMU's own sockets, so they leave from that namespace,
        and the host's addresses (where the daemon listens) are refused. The firewall is
        outside the VM, where the function (root in its guest) cannot touch it."""
        if self._host_watch is None:
            self._host_watch = asyncio.create_task(
                networks.watch_host(HOST_ADDRESS_REFRESH_S), name="vm-host-address-watch"
            )
        network = networks.open(spec.instance_id, spec.work_dir / "network.log")
        resolv = spec.work_dir / "resolv.conf"  # QEMU's resolver: slirp4netns's forwarder
        resolv.write_bytes(rules.RESOLV_CONF)
        info_fd, block_fd = network.sync_fds
        wrapper = (
            self._bwrap, "--dev-bind", "/", "/", "--unshare-net", "--die-with-parent",
            "--info-fd", str(info_fd), "--block-fd", str(block_fd),
            "--ro-bind", str(resolv), "/etc/resolv.conf", "--",
        )  # fmt: skip
        return network, replace(
            config, network=True, wrapper=wrapper, inherit_fds=(info_fd, block_fd)
        )

    async def _boot_vm(self, config: VmConfig, network: InstanceNetwork | None) -> Vm:
        if network is None:
            return await self._driver.boot(config)
        # bwrap waits (block fd) until the namespace has its network; QEMU serves its sockets
        # only after that, so the attach runs beside the boot.
        attached = asyncio.ensure_future(network.attach(()))
        try:
            vm = await self._driver.boot(config)
        except BaseException:
            network.close_child_ends()
            with contextlib.suppress(Exception):
                await attached
            raise
        network.close_child_ends()
        try:
            await attached
        except BaseException:
            await self._driver.stop(vm)
            raise
        return vm

    async def _try_restore(
        self, spec: InstanceSpec, image_id: str, base: _Base, key: str
    ) -> MicrovmInstance | None:
        """A started instance from the function's snapshot; None (boot instead) when there
        is none, or when it is corrupt or fails to restore (counted, and deleted)."""
        function = spec.function_name
        try:
            snapshot = await asyncio.to_thread(self.snapshots.find, function, key)
            if snapshot is None:
                return None
            return await self._restore(spec, image_id, base, snapshot)
        except SandboxError as exc:
            self.counters.vm_restore_failures += 1
            logger.warning(
                "restoring %s from its snapshot failed, booting instead: %s", function, exc
            )
            await asyncio.to_thread(self.snapshots.remove, function, key)
            return None

    async def _restore(
        self, spec: InstanceSpec, image_id: str, base: _Base, snapshot: Snapshot
    ) -> MicrovmInstance:
        spec.work_dir.mkdir(parents=True, exist_ok=True)
        config = vm_config(self._options, spec, base.boot, base.rootfs, snapshot.code_drive)
        connected: list[socket.socket] = []

        async def connect(vm: Vm) -> None:
            connected.append(await connect_channel(config.channel, vm, hello=False))

        try:
            vm = await self._driver.restore(config, snapshot.files, connect)
        except BaseException:
            for sock in connected:
                sock.close()
            _discard(spec, config)
            raise
        sock = connected[0]
        try:
            await resume_agent(
                sock, self._options.max_message_bytes, self._options.resume_timeout_s
            )
        except BaseException:
            sock.close()
            await self._driver.stop(vm)
            _discard(spec, config)
            raise
        self.counters.vm_restores += 1
        instance = MicrovmInstance(self, spec, vm, sock, image_id, initialised=True)
        self._instances[spec.instance_id] = instance
        return instance

    async def save(self, instance: MicrovmInstance, key: str) -> None:
        """Snapshot an instance just initialised (the VM pauses for the state and a copy of
        its RAM, then runs on); the checksums and publishing go on in the background."""
        function = instance.spec.function_name
        try:
            if await asyncio.to_thread(self.snapshots.find, function, key) is not None:
                return  # another instance saved it first
        except SandboxError:
            pass  # corrupt: replace it
        staging = await asyncio.to_thread(
            self.snapshots.staging, function, key, instance.instance_id
        )
        try:
            os.link(instance.config.drives[1].path, staging / "code.ext4")
            await self._driver.snapshot(
                instance.vm, SnapshotFiles(staging / "ram", staging / "state")
            )
        except (SandboxError, OSError) as exc:
            logger.warning("could not snapshot %s: %s", function, exc)
            await asyncio.to_thread(shutil.rmtree, staging, True)
            return
        task = asyncio.create_task(self._publish(staging, function, key))
        self._saving.add(task)
        task.add_done_callback(self._saving.discard)

    async def _publish(self, staging: Path, function: str, key: str) -> None:
        try:
            if await asyncio.to_thread(self.snapshots.publish, staging, function, key):
                self.counters.vm_snapshots += 1
                logger.info("saved a VM snapshot of %s", function)
        except OSError as exc:
            logger.warning("could not save the snapshot of %s: %s", function, exc)
            await asyncio.to_thread(shutil.rmtree, staging, True)

    async def wait_for_snapshots(self) -> None:
        """Until every snapshot being published is (tests, shutdown)."""
        if self._saving:
            await asyncio.gather(*self._saving, return_exceptions=True)

    def _forget(self, instance_id: str) -> None:
        self._instances.pop(instance_id, None)

    async def close(self) -> None:
        if self._host_watch is not None:
            self._host_watch.cancel()
        await asyncio.gather(*(i.kill() for i in list(self._instances.values())))
        await self.wait_for_snapshots()


def _network_summary(available: bool) -> str:
    if available:
        return "network: QEMU user-mode networking from a slirp4netns namespace with a firewall"
    return (
        "network unavailable (it needs what the container backend's network: true needs: "
        "slirp4netns, nftables and bubblewrap)"
    )


@dataclass(frozen=True, slots=True)
class _Base:
    boot: guest_boot.GuestBoot
    rootfs: Path


def _memory_file(spec: InstanceSpec) -> Path:
    """Guest RAM of a VM that will be snapshotted: in /dev/shm where it exists, so the guest's
    writes never go to disk."""
    shm = Path("/dev/shm")
    directory = shm / "nova-vm" if shm.is_dir() else spec.work_dir
    directory.mkdir(mode=0o700, exist_ok=True)
    return directory / f"{spec.instance_id}.ram"


def _discard(spec: InstanceSpec, config: VmConfig) -> None:
    if config.memory_file is not None:
        config.memory_file.unlink(missing_ok=True)
    shutil.rmtree(spec.work_dir, ignore_errors=True)


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
        f"nova_pids={options.pids_max * spec.concurrency} "
        f"nova_max_message={options.max_message_bytes}"
        f"{' nova_net=1' if spec.network else ''}"
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
        backend: MicrovmBackend,
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
        await self._backend._driver.stop(self.vm)
        if self.network is not None:  # after the VM: see InstanceNetwork.close
            await asyncio.to_thread(self.network.close)
        with contextlib.suppress(OSError):
            self._sock.close()
        await asyncio.to_thread(_discard, self.spec, self.config)
        self._backend._forget(self.spec.instance_id)


__all__ = ["MicrovmBackend", "MicrovmInstance", "MicrovmOptions"]
