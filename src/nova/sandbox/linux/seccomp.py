"""The seccomp deny-list that every container instance runs under, compiled with libseccomp.

Why a deny list and not an allow list: the sandbox runs arbitrary interpreters (CPython, Node,
whatever a function's dependencies load), and an allow list that is one syscall short breaks
them in ways that are hard to diagnose. The namespaces, the dropped capabilities and the
unprivileged uid already stop most of these calls; the filter is the second wall that also
closes the kernel attack surface reachable *without* privileges (bpf, userfaultfd, io_uring,
keyctl, perf_event_open, new namespaces, ...).

Why libseccomp through ctypes: libseccomp (Debian ``libseccomp2``, already installed wherever
systemd is) is the maintained compiler that runc, crun, Docker and systemd use; it knows every
architecture's syscall table and emits the architecture check, including killing x86_64's x32
ABI and the i386 ``int 0x80`` entry that would otherwise walk around a deny list. The PyPI
wrapper ``pyseccomp`` has not been released since 2021 and adds nothing over the six C
functions bound here, so Nova binds them itself and takes no new Python dependency.

The output is a classic-BPF program (``struct sock_filter[]``) in the kernel's format, which
``bwrap --seccomp FD`` loads right before it executes the agent.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import os

from nova.core.errors import SandboxError

# Constants from <seccomp.h> (libseccomp 2.5; stable ABI).
_ACT_ALLOW = 0x7FFF0000
_ACT_KILL_PROCESS = 0x80000000
_FLTATR_ACT_BADARCH = 2
_CMP_MASKED_EQ = 7
_NR_SCMP_ERROR = -1


def _act_errno(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


# Refused with EPERM: what a function never needs and an attacker wants. Grouped by why.
DENIED_SYSCALLS: tuple[str, ...] = (
    # file systems and mounts: the sandbox's view of the file system is fixed by bwrap
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "name_to_handle_at",
    "open_by_handle_at",
    "quotactl",
    "quotactl_fd",
    "swapon",
    "swapoff",
    "acct",
    # namespaces: no nested sandboxes, no joining the host's (see also clone below)
    "unshare",
    "setns",
    # tracing and peeking into other processes
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "perf_event_open",
    "lookup_dcookie",
    "syslog",
    # kernel code and kernel state
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "reboot",
    "bpf",
    "iopl",
    "ioperm",
    "uselib",
    "personality",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "vhangup",
    "sethostname",
    "setdomainname",
    # keyrings are not namespaced
    "keyctl",
    "add_key",
    "request_key",
    # large unprivileged attack surface with a history of exploits
    "userfaultfd",
    "fanotify_init",
)

# Refused with ENOSYS so that libraries fall back to an older interface, as Docker's profile
# does: glibc retries clone3 as clone (whose flags *can* be filtered, see below), and io_uring
# users fall back to plain reads and writes.
ENOSYS_SYSCALLS: tuple[str, ...] = (
    "clone3",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
)

# clone() flags that create namespaces; clone() itself must stay (fork, threads).
CLONE_NAMESPACE_FLAGS: tuple[int, ...] = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
    0x00000080,  # CLONE_NEWTIME
)


class _ArgCmp(ctypes.Structure):
    """``struct scmp_arg_cmp``."""

    _fields_ = (
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    )


@functools.cache
def _libseccomp() -> ctypes.CDLL:
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError as exc:
        raise SandboxError(
            f"libseccomp is not available ({exc}); install it: apt-get install libseccomp2"
        ) from exc
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = (ctypes.c_uint32,)
    lib.seccomp_release.restype = None
    lib.seccomp_release.argtypes = (ctypes.c_void_p,)
    lib.seccomp_attr_set.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32)
    lib.seccomp_syscall_resolve_name.argtypes = (ctypes.c_char_p,)
    lib.seccomp_rule_add_array.argtypes = (
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_ArgCmp),
    )
    lib.seccomp_export_bpf.argtypes = (ctypes.c_void_p, ctypes.c_int)
    return lib


def _check(rc: int, what: str) -> None:
    # libseccomp returns -errno on failure.
    if rc < 0:
        raise SandboxError(f"libseccomp: {what} failed: {os.strerror(-rc)}")


@functools.cache
def deny_filter() -> bytes:
    """The compiled filter (built once per process; a few hundred bytes)."""
    return _compile(template=False)


@functools.cache
def template_filter() -> bytes:
    """The filter a function template runs its function's module-level init code under: the
    deny list, except for the few calls its forks make their namespaces with, narrowed by
    their arguments (each fork then stacks :func:`deny_filter` on it before the function's
    code runs again).

    - ``unshare`` of mount, pid, net, ipc, uts and cgroup namespaces (never a user or time
      namespace, which would give the caller capabilities it does not have);
    - ``mount``: the template's own mount namespace belongs to bwrap's outer user namespace
      (``--disable-userns`` runs the sandbox in a nested one), so the kernel refuses it there
      (tested: EPERM with the capabilities); it works only in a mount namespace the template
      made with ``unshare``, as each fork does for its /tmp, /dev/shm and /proc (mounts copied
      from bwrap's stay locked: none can be made writable or moved);
    - and, always denied here, netfilter's netlink family: the template holds CAP_NET_ADMIN
      over its loopback-only network, which would reach nf_tables, a frequent exploit target.
    """
    return _compile(template=True)


def _compile(*, template: bool) -> bytes:
    lib = _libseccomp()
    ctx = lib.seccomp_init(_ACT_ALLOW)
    if not ctx:
        raise SandboxError("libseccomp: seccomp_init failed")
    try:
        # Only the native ABI is in the filter; anything else (x32, i386 via int 0x80) kills
        # the process instead of reaching syscalls that the deny list names only natively.
        _check(lib.seccomp_attr_set(ctx, _FLTATR_ACT_BADARCH, _ACT_KILL_PROCESS), "badarch")
        narrowed = TEMPLATE_NARROWED if template else ()
        for names, action in (
            (DENIED_SYSCALLS, _act_errno(errno.EPERM)),
            (ENOSYS_SYSCALLS, _act_errno(errno.ENOSYS)),
        ):
            for name in names:
                nr = lib.seccomp_syscall_resolve_name(name.encode())
                if nr == _NR_SCMP_ERROR:
                    continue  # not a syscall on this architecture (e.g. iopl on arm64)
                if name in narrowed:
                    continue  # allowed but for the arguments denied below
                _check(lib.seccomp_rule_add_array(ctx, action, nr, 0, None), f"deny {name}")
        # One rule per flag: "flags & FLAG == FLAG" (libseccomp has no "masked != 0").
        for flag in CLONE_NAMESPACE_FLAGS:
            _deny_masked(lib, ctx, "clone", _clone_flags_arg(), flag, flag)
        if template:
            for flag in TEMPLATE_DENIED_UNSHARE:
                _deny_masked(lib, ctx, "unshare", 0, flag, flag)
            _deny_netfilter_netlink(lib, ctx)
        return _export(lib, ctx)
    finally:
        lib.seccomp_release(ctx)


# What a template's filter allows of the deny list, narrowed by the rules below.
TEMPLATE_NARROWED = ("unshare", "mount")
TEMPLATE_DENIED_UNSHARE = (0x10000000, 0x00000080)  # CLONE_NEWUSER, CLONE_NEWTIME
_AF_NETLINK, _NETLINK_NETFILTER = 16, 12
_CMP_EQ = 4


def _deny_masked(lib: ctypes.CDLL, ctx: int, name: str, arg: int, mask: int, value: int) -> None:
    nr = lib.seccomp_syscall_resolve_name(name.encode())
    cmp = _ArgCmp(arg=arg, op=_CMP_MASKED_EQ, datum_a=mask, datum_b=value)
    _check(lib.seccomp_rule_add_array(ctx, _act_errno(errno.EPERM), nr, 1, cmp), f"{name} args")


def _deny_netfilter_netlink(lib: ctypes.CDLL, ctx: int) -> None:
    nr = lib.seccomp_syscall_resolve_name(b"socket")
    cmps = (_ArgCmp * 2)(
        _ArgCmp(arg=0, op=_CMP_EQ, datum_a=_AF_NETLINK, datum_b=0),
        _ArgCmp(arg=2, op=_CMP_EQ, datum_a=_NETLINK_NETFILTER, datum_b=0),
    )
    _check(lib.seccomp_rule_add_array(ctx, _act_errno(errno.EPERM), nr, 2, cmps), "netlink")


def _clone_flags_arg() -> int:
    # clone's flags are the first argument everywhere except s390 (second); Nova targets
    # x86_64 and arm64, where it is the first.
    return 0


def _export(lib: ctypes.CDLL, ctx: int) -> bytes:
    fd = os.memfd_create("nova-seccomp", os.MFD_CLOEXEC)
    try:
        _check(lib.seccomp_export_bpf(ctx, fd), "export")
        size = os.lseek(fd, 0, os.SEEK_CUR)
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)
