"""The guest's kernel and initramfs, built from Debian packages and cached by content.

The kernel is linux-image-cloud-amd64's (installed on the host; its virtio drivers are modules)
and the initramfs holds busybox-static, those modules and ``/init``, a shell script that loads
the modules, mounts the drives and hands over to the Nova agent as PID 1::

    /dev/vda  ext4, read-only   the runtime image + the agent      -> /
    /dev/vdb  ext4, read-only   the function's code (per instance) -> /code
    tmpfs                       sized from the function's limits   -> /tmp
    /dev/vport0p1               the virtio-serial port to the host -> the agent's fd 3
    cgroup2 pids.max            nova_pids processes for the agent and all it starts

The build is a few file copies and a cpio archive (~50 ms); the result lives in a directory
named after the hash of everything that went in, so a kernel or busybox upgrade or a change of
``/init`` gives a new one, and two daemons never fight over one.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from nova.core.errors import SandboxError

BUSYBOX = Path("/bin/busybox")
KERNEL_PACKAGE = "linux-image-cloud-amd64"
# Load order matters: each after the modules it depends on (modules.dep).
MODULES = (
    "kernel/drivers/virtio/virtio_ring.ko",
    "kernel/drivers/virtio/virtio.ko",
    "kernel/drivers/virtio/virtio_mmio.ko",
    "kernel/drivers/block/virtio_blk.ko",
    "kernel/drivers/char/virtio_console.ko",
)
# Only for functions with network: true.
NET_MODULES = (
    "kernel/net/core/failover.ko",
    "kernel/drivers/net/net_failover.ko",
    "kernel/drivers/net/virtio_net.ko",
)
GUEST_ADDRESS = "10.0.2.15"  # QEMU's user-mode network: the guest, its gateway, its resolver
GUEST_GATEWAY = "10.0.2.2"
GUEST_RESOLVER = "10.0.2.3"
AGENT_DIR = "/opt/nova"  # inside the rootfs drive: PYTHONPATH of the agent (drives.py)
HELLO = b"N"  # the host's first byte on the channel, once it is connected
AGENT_FD = 3
CODE_DIR = "/code"
TMP_DIR = "/tmp"

# Kernel command line. The tsc/lpj values skip calibration, which hangs without the PIT under
# TCG; rtc stays (rtc=off costs 1.5 s of probing). Measured boot to init ~1.1 s under TCG.
KERNEL_ARGS = (
    "console=ttyS0 quiet panic=-1 tsc_early_khz=2596000 tsc=reliable lpj=5192000 "
    "no_timer_check pci=off cryptomgr.notests mitigations=off random.trust_cpu=on"
)

# Parameters the kernel does not know are passed to /init as environment variables.
INIT_SCRIPT = f"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t devtmpfs dev /dev
for m in {" ".join(Path(module).stem for module in MODULES)}; do
    insmod /lib/modules/$m.ko || echo "nova-init: insmod $m failed"
done
n=0
until [ -b /dev/vda ] && [ -b /dev/vdb ] && [ -c /dev/vport0p1 ]; do
    n=$((n + 1))
    if [ $n -gt 1000 ]; then echo "nova-init: drives or port missing"; ls /dev; poweroff -f; fi
    usleep 5000
done
mount -t ext4 -o ro,noatime /dev/vda /newroot || poweroff -f
mount -t ext4 -o ro,noatime,nosuid,nodev /dev/vdb /newroot{CODE_DIR} || poweroff -f
mount -t tmpfs -o size=${{nova_tmp_mb:-64}}m,mode=1777,nosuid,nodev tmp /newroot{TMP_DIR}
# Root ignores RLIMIT_NPROC: a cgroup caps the agent and all it starts, so a fork bomb fails
# inside the function (EAGAIN) as in a container instead of filling the guest's RAM.
mkdir /cgroup
mount -t cgroup2 cgroup2 /cgroup && echo +pids > /cgroup/cgroup.subtree_control && \
    mkdir /cgroup/nova && echo ${{nova_pids:-64}} > /cgroup/nova/pids.max && \
    echo $$ > /cgroup/nova/cgroup.procs || {{ echo "nova-init: no pids limit"; poweroff -f; }}
ifconfig lo 127.0.0.1 up  # functions may talk to themselves
if [ -n "$nova_net" ]; then
    for m in {" ".join(Path(module).stem for module in NET_MODULES)}; do
        insmod /lib/modules/$m.ko || echo "nova-init: insmod $m failed"
    done
    ifconfig eth0 {GUEST_ADDRESS} netmask 255.255.255.0 up && \
        route add default gw {GUEST_GATEWAY} || {{ echo "nova-init: no network"; poweroff -f; }}
    # The image's resolv.conf is read-only: this one is bound over it (and outlives /init).
    echo "nameserver {GUEST_RESOLVER}" > /resolv.conf
    mount --bind /resolv.conf /newroot/etc/resolv.conf
fi
mount --move /proc /newroot/proc
mount --move /dev /newroot/dev
exec {AGENT_FD}<>/newroot/dev/vport0p1
# The port reads as closed (EOF) until the host's side is connected, and the agent takes EOF
# for "host gone": wait for the byte the host sends once it is connected.
n=0
until read -n 1 -t 1 hello <&{AGENT_FD} && [ "$hello" = {HELLO.decode()} ]; do
    n=$((n + 1))
    if [ $n -gt 5000 ]; then echo "nova-init: the host never connected"; poweroff -f; fi
    usleep 2000
done
exec env -i PATH=/usr/local/bin:/usr/bin:/bin PYTHONPATH={AGENT_DIR} \\
    PYTHONDONTWRITEBYTECODE=1 HOME={TMP_DIR} LANG=C.UTF-8 \\
    switch_root /newroot /usr/bin/python3 -S -m nova.agent --fd {AGENT_FD} \\
    --max-message-bytes ${{nova_max_message:-8388608}}
"""


@dataclass(frozen=True, slots=True)
class GuestBoot:
    """A built kernel + initramfs pair."""

    id: str  # "vm-<hash>": names the pair in snapshot keys and logs
    kernel: Path
    initrd: Path
    kernel_version: str


def find_kernel(
    boot: Path = Path("/boot"), modules: Path = Path("/lib/modules")
) -> tuple[Path, Path]:
    """(vmlinuz, its modules directory) of the newest installed cloud kernel."""
    found = []
    for path in boot.glob("vmlinuz-*-cloud-amd64"):
        version = path.name.removeprefix("vmlinuz-")
        if (modules / version).is_dir():
            found.append((_version_key(version), path, modules / version))
    if not found:
        raise SandboxError(
            f"no guest kernel: install {KERNEL_PACKAGE} (make system-deps) for the microvm backend"
        )
    _, kernel, module_dir = max(found)
    return kernel, module_dir


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version))


def build_guest(cache: Path, progress: Callable[[float, str], None] | None = None) -> GuestBoot:
    """The cached guest for the installed kernel and busybox, built if missing."""
    report = progress or (lambda _fraction, _message: None)
    kernel, module_dir = find_kernel()
    if not BUSYBOX.is_file():
        raise SandboxError("busybox-static is not installed (make system-deps)")
    report(0.1, f"hashing {kernel.name}")
    digest = hashlib.sha256(INIT_SCRIPT.encode())
    inputs = [kernel, BUSYBOX, *(module_dir / module for module in (*MODULES, *NET_MODULES))]
    for path in inputs:
        digest.update(path.name.encode())
        digest.update(_file_hash(path))
    guest_id = f"vm-{digest.hexdigest()[:16]}"
    target = cache / guest_id
    result = GuestBoot(guest_id, target / "vmlinuz", target / "initrd.cpio", module_dir.name)
    if result.initrd.is_file():
        report(1.0, "ready (cached)")
        return result
    cache.mkdir(parents=True, exist_ok=True)
    staging = cache / f".{guest_id}.{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        report(0.4, "copying the kernel")
        shutil.copyfile(kernel, staging / "vmlinuz")
        report(0.6, "writing the initramfs")
        entries: list[tuple[str, int, bytes]] = [
            ("bin", stat.S_IFDIR | 0o755, b""),
            ("dev", stat.S_IFDIR | 0o755, b""),
            ("proc", stat.S_IFDIR | 0o755, b""),
            ("newroot", stat.S_IFDIR | 0o755, b""),
            ("lib", stat.S_IFDIR | 0o755, b""),
            ("lib/modules", stat.S_IFDIR | 0o755, b""),
            ("bin/busybox", stat.S_IFREG | 0o755, BUSYBOX.read_bytes()),
            ("init", stat.S_IFREG | 0o755, INIT_SCRIPT.encode()),
        ]
        for module in (*MODULES, *NET_MODULES):
            name = Path(module).name
            entries.append(
                (f"lib/modules/{name}", stat.S_IFREG | 0o644, (module_dir / module).read_bytes())
            )
        (staging / "initrd.cpio").write_bytes(cpio_newc(entries))
        try:
            staging.rename(target)
        except OSError:  # another process published the same content meanwhile
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    report(1.0, "ready")
    return result


def _file_hash(path: Path) -> bytes:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.digest()


def cpio_newc(entries: Iterable[tuple[str, int, bytes]]) -> bytes:
    """A cpio archive in the "newc" format the kernel unpacks as an initramfs."""
    out = bytearray()
    for inode, (name, mode, data) in enumerate([*entries, ("TRAILER!!!", 0, b"")], start=1):
        encoded = name.encode() + b"\0"
        fields = (inode, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0)
        out += b"070701" + b"".join(b"%08X" % value for value in fields)
        out += encoded
        out += b"\0" * (-len(out) % 4)
        out += data
        out += b"\0" * (-len(out) % 4)
    return bytes(out)
