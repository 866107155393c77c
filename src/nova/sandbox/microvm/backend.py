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
port). Sizes and the VM's files: layout.py; the instance and its agent connection: instance.py.
No network device unless ``network: true``: then a virtio-net device on QEMU's user-mode
network, QEMU itself in a network namespace behind the instance firewall (:meth:`_network_for`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import time
from dataclasses import dataclass, replace
from pathlib import Path

from nova.core.counters import DaemonCounters
from nova.core.errors import SandboxError
from nova.images.ports import ImageRoot, RuntimeImages
from nova.images.progress import BuildProgress, ProgressSink
from nova.sandbox.base import BackendInfo, InstanceSpec, SandboxInstance
from nova.sandbox.microvm import guest as guest_boot
from nova.sandbox.microvm.accel import Accel
from nova.sandbox.microvm.drives import code_drive, rootfs_drive
from nova.sandbox.microvm.instance import MicrovmInstance, connect_channel, resume_agent
from nova.sandbox.microvm.layout import MicrovmOptions, discard, memory_file, vm_config
from nova.sandbox.microvm.probe import probe
from nova.sandbox.microvm.qemu import QemuDriver
from nova.sandbox.microvm.snapshots import Snapshot, SnapshotStore, snapshot_key
from nova.sandbox.microvm.vmm import SnapshotFiles, Vm, VmConfig, VmmDriver
from nova.sandbox.network import rules
from nova.sandbox.network.networks import InstanceNetwork, Networks

logger = logging.getLogger(__name__)

HOST_ADDRESS_REFRESH_S = 10.0  # how often networked VMs' firewalls re-read host addresses


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
            memory = memory_file(spec) if key is not None else None
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
            discard(spec, config)
            raise
        try:
            sock = await connect_channel(config.channel, vm, hello=True)
        except BaseException:
            await self._driver.stop(vm)
            if network is not None:
                await asyncio.to_thread(network.close)
            discard(spec, config)
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
            discard(spec, config)
            raise
        sock = connected[0]
        try:
            await resume_agent(
                sock, self._options.max_message_bytes, self._options.resume_timeout_s
            )
        except BaseException:
            sock.close()
            await self._driver.stop(vm)
            discard(spec, config)
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

    async def stop_vm(self, vm: Vm) -> None:
        await self._driver.stop(vm)

    def forget(self, instance_id: str) -> None:
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


__all__ = ["MicrovmBackend"]
