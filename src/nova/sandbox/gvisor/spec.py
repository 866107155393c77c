"""The OCI runtime spec (``config.json``) of one gVisor instance: a pure function, so it can be
read, tested and printed without starting anything (the gVisor twin of :mod:`nova.sandbox.container.bwrap`).

What the instance sees (all of it served by gVisor's own kernel, the Sentry; host files reach it
through the gofer, never by a host syscall of the function's)::

    /usr            host /usr, read-only
    /bin /lib ...   symlinks into /usr in the shared base root (merged-/usr hosts), or binds
    /etc            generated passwd/group/hosts/nsswitch.conf (files of the base root) + the
                    host's loader, DNS and TLS files bound read-only; no shadow, no accounts
    /proc           gVisor's procfs of the sandbox's own pid namespace
    /dev            gVisor's minimal /dev (null, zero, full, random, urandom, tty, pts)
    /dev/shm        a private tmpfs of at most 16 MiB
    /sys            an empty read-only tmpfs: runsc always mounts its synthetic sysfs, this
                    hides it as the container backend hides /sys
    /opt/nova       nova/__init__.py and nova/agent/ only (read-only)
    /code           the function's code (read-only)
    /tmp            a private tmpfs of a fixed size, the function's writable scratch space
    /               the shared base root (mount points + generated /etc), read-only

runsc runs with ``--file-access-mounts=exclusive``: gVisor caches what the binds hold, as they
never change under an instance. The code mount is the exception: the host replaces its files
for a hot reload (:mod:`nova.sandbox.instance_code`), so a mount hint marks it ``shared`` with
processes outside the sandbox, and gVisor revalidates it with the gofer. Measured with runsc
2022-12: without the hint a sandbox keeps reading the old files for as long as it runs; with it,
the new ones from the next lookup on. The hint changes nothing else: the mount stays read-only.

Limits inside the Sentry come from ``process.rlimits``: gVisor enforces RLIMIT_NPROC per uid
(everything of an instance is uid 65534, so it is the instance's process limit, the job pids.max
does for containers), RLIMIT_NOFILE, RLIMIT_FSIZE and RLIMIT_CORE. Host-side limits (memory,
host tasks, CPU) are the instance's cgroups, joined before runsc starts; see
:mod:`nova.sandbox.gvisor.backend`.

The seccomp section is the container backend's deny list (:mod:`nova.sandbox.linux.seccomp`) in OCI
form. runsc applies it *inside* the Sentry with ``--oci-seccomp``: gVisor would refuse most of
these calls anyway (mount, ptrace of others), but it implements user namespaces and chroot, and
a function that may unshare gets capabilities in its own namespace (raw sockets, chroot, ...).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nova.sandbox.container import bwrap as bw
from nova.sandbox.linux.seccomp import CLONE_NAMESPACE_FLAGS, DENIED_SYSCALLS, ENOSYS_SYSCALLS

OCI_VERSION = "1.0.2"
MOUNT_HINT_PREFIX = "dev.gvisor.spec.mount."  # runsc's per-mount hints (runsc/boot/mount_hints.go)
EPERM = 1
# Options of every bind: read-only, and no set-uid binaries or device nodes honoured even if a
# host path held some (no_new_privs would already neuter set-uid).
_RO_BIND = ["rbind", "ro", "nosuid", "nodev"]


@dataclass(frozen=True, slots=True)
class SpecLimits:
    """Limits the Sentry enforces on the function's processes."""

    tmp_bytes: int  # /tmp size, also RLIMIT_FSIZE
    processes: int  # RLIMIT_NPROC: every process and thread of uid 65534 in the sandbox
    open_files: int  # RLIMIT_NOFILE


@dataclass(frozen=True, slots=True)
class SpecMounts:
    """What differs between instances: host paths bound into the sandbox."""

    code_dir: str
    agent_package_init: str  # host path of nova/__init__.py
    agent_package_dir: str  # host path of nova/agent/


def oci_spec(
    base_root: str,
    layout: bw.RootLayout,
    mounts: SpecMounts,
    limits: SpecLimits,
    *,
    env: Mapping[str, str],
    command: Sequence[str],
) -> dict[str, Any]:
    """The config.json of one instance. ``base_root`` is the shared, read-only root directory
    (see :func:`nova.sandbox.gvisor.setup.base_root`)."""
    return {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": False,
            "user": {"uid": bw.SANDBOX_UID, "gid": bw.SANDBOX_UID, "additionalGids": []},
            "args": list(command),
            "env": [f"{key}={value}" for key, value in env.items()],
            "cwd": bw.TMP_DIR,
            # No capability in any set: the function is an ordinary user of gVisor's kernel.
            "capabilities": {
                key: [] for key in ("bounding", "effective", "inheritable", "permitted", "ambient")
            },
            "rlimits": _rlimits(limits),
            "noNewPrivileges": True,
        },
        "root": {"path": base_root, "readonly": True},
        "hostname": bw.SANDBOX_HOSTNAME,
        "mounts": _mounts(layout, mounts, limits),
        "annotations": _shared_mount_hint("code", mounts.code_dir),
        "linux": {
            # New namespaces *inside* the Sentry; gVisor has no host namespace to share anyway.
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "seccomp": seccomp_section(),
        },
    }


def _rlimits(limits: SpecLimits) -> list[dict[str, Any]]:
    pairs = {
        "RLIMIT_NPROC": limits.processes,
        "RLIMIT_NOFILE": limits.open_files,
        "RLIMIT_FSIZE": limits.tmp_bytes,
        "RLIMIT_CORE": 0,
    }
    # Soft = hard: the function cannot raise them back.
    return [{"type": name, "hard": value, "soft": value} for name, value in pairs.items()]


def _mounts(layout: bw.RootLayout, mounts: SpecMounts, limits: SpecLimits) -> list[dict[str, Any]]:
    def bind(source: str, destination: str) -> dict[str, Any]:
        return {"destination": destination, "type": "bind", "source": source, "options": _RO_BIND}

    def tmpfs(destination: str, options: list[str]) -> dict[str, Any]:
        return {"destination": destination, "type": "tmpfs", "source": "tmpfs", "options": options}

    shm_bytes = min(limits.tmp_bytes, bw.SHM_MAX_BYTES)
    return [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        bind("/usr", "/usr"),
        *(bind(directory, directory) for directory in layout.binds),
        *(bind(path, path) for path in layout.etc_files),
        tmpfs("/sys", ["ro", "nosuid", "nodev", "noexec", "size=4k"]),
        tmpfs("/dev/shm", [f"size={shm_bytes}", "mode=1777", "nosuid", "nodev"]),
        tmpfs(bw.TMP_DIR, [f"size={limits.tmp_bytes}", "mode=1777", "nosuid", "nodev"]),
        bind(mounts.agent_package_init, f"{bw.AGENT_ROOT}/nova/__init__.py"),
        bind(mounts.agent_package_dir, f"{bw.AGENT_ROOT}/nova/agent"),
        bind(mounts.code_dir, bw.CODE_DIR),
    ]


def _shared_mount_hint(name: str, source: str) -> dict[str, str]:
    """runsc's annotations that make the bind of ``source`` revalidated (FileAccessShared)
    while every other mount stays exclusive; ``name`` only ties the three keys together."""
    prefix = f"{MOUNT_HINT_PREFIX}{name}."
    return {f"{prefix}source": source, f"{prefix}type": "bind", f"{prefix}share": "shared"}


def seccomp_section() -> dict[str, Any]:
    """The deny list of :mod:`nova.sandbox.linux.seccomp` as an OCI ``linux.seccomp`` object.

    runsc 2022-12 ignores ``errnoRet`` (measured: every ERRNO action returns EPERM), so the
    container filter's ENOSYS group cannot be copied as it is. clone3 stays out: gVisor does
    not implement it (ENOSYS natively, so glibc falls back to clone, whose namespace flags are
    filtered below), and EPERM would make glibc fail every new thread. io_uring is refused with
    EPERM: gVisor serves it from its own, young implementation, and neither CPython nor Node
    (libuv 1.44) use it.
    """
    refused = [*DENIED_SYSCALLS, *(name for name in ENOSYS_SYSCALLS if name != "clone3")]
    rules: list[dict[str, Any]] = [
        {"names": refused, "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM},
    ]
    # clone() stays (fork, threads); clone() with any namespace flag is refused, one rule per
    # flag ("flags & FLAG == FLAG"), as in the container backend's filter.
    rules += [
        {
            "names": ["clone"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": EPERM,
            "args": [{"index": 0, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}],
        }
        for flag in CLONE_NAMESPACE_FLAGS
    ]
    return {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules}
