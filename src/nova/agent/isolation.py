"""What bwrap does for a slow-path instance, done in-process by a child forked from a function
template (template.py): fresh namespaces, a private /tmp, /dev/shm and /proc, no capabilities,
no_new_privs and the seccomp filter.

The template runs in a user namespace where it holds only CAP_SYS_ADMIN, CAP_NET_ADMIN and
CAP_SETPCAP, and only over namespaces that user namespace owns (its own mounts, its own network
with nothing but loopback), under the template seccomp filter (only the unshare and mount calls
made here are let through). A child uses them to make its own mount, pid, net, ipc and uts
namespaces and mounts, then gives every capability up and stacks the instance filter before
any of the function's code runs again. Nothing here is reachable from the host: the user
namespace maps one host uid, nobody.

libc is called through ctypes: the agent is stdlib-only, and Python 3.11 has no os.unshare.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
INSTANCE_NAMESPACES = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18

PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, PR_CAP_AMBIENT = 24, 38, 22, 47
PR_CAP_AMBIENT_CLEAR_ALL, SECCOMP_MODE_FILTER = 4, 2
_CAPABILITY_VERSION_3 = 0x20080522
_LAST_CAP = 63  # above the kernel's last capability, PR_CAPBSET_DROP answers EINVAL

SIOCSIFFLAGS, IFF_UP, IFF_LOOPBACK, IFF_RUNNING = 0x8914, 0x1, 0x8, 0x40
SHM_MAX_BYTES = 16 * 1024 * 1024  # as bwrap.SHM_MAX_BYTES (the agent cannot import the host's)
# bwrap keeps these parts of /proc read-only in every instance.
PROC_READ_ONLY = ("/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus")

_libc = ctypes.CDLL(None, use_errno=True)


class IsolationError(OSError):
    pass


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise IsolationError(errno, f"{what}: {os.strerror(errno)}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    result = _libc.mount(
        source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
        data.encode() if data else None,
    )  # fmt: skip
    _check(result, f"mount {target}")


def private_mounts(tmp_dir: str, tmp_bytes: int) -> None:
    """In a fresh mount and pid namespace (as their first process): nothing propagates back
    to the template, and /tmp, /dev/shm and /proc are this instance's own."""
    _mount("none", "/", None, MS_REC | MS_PRIVATE, None)
    _mount("tmpfs", tmp_dir, "tmpfs", MS_NOSUID | MS_NODEV, f"size={tmp_bytes},mode=1777")
    shm = min(tmp_bytes, SHM_MAX_BYTES)
    _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, f"size={shm},mode=1777")
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
    for path in PROC_READ_ONLY:
        if os.path.exists(path):
            _mount(path, path, None, MS_BIND | MS_REC, None)
            _mount(path, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY, None)
    os.chdir(tmp_dir)  # the cwd still pointed into the template's /tmp


def loopback_up() -> None:
    """A new network namespace has its loopback down; bwrap brings it up, so does this."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        request = struct.pack("16sH14x", b"lo", IFF_UP | IFF_LOOPBACK | IFF_RUNNING)
        fcntl.ioctl(probe.fileno(), SIOCSIFFLAGS, request)


def drop_privileges(seccomp_program: bytes) -> None:
    """Every capability gone (bounding, ambient, effective, permitted, inheritable),
    no_new_privs, then the seccomp filter: what bwrap's --cap-drop ALL and --seccomp leave."""
    for cap in range(_LAST_CAP + 1):
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            break  # past the kernel's last capability
    _check(_libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clear ambient caps")
    header = struct.pack("Ii", _CAPABILITY_VERSION_3, 0)
    data = ctypes.create_string_buffer(24)  # two zeroed {effective, permitted, inheritable}
    _check(_libc.capset(ctypes.c_char_p(header), data), "capset")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    program = ctypes.create_string_buffer(seccomp_program, len(seccomp_program))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(seccomp_program) // 8, ctypes.addressof(program))
    _check(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0), "seccomp")
