"""The bubblewrap command line of one container instance: a pure function, so it can be read,
tested and printed without starting anything.

What the instance sees::

    /usr            host /usr, read-only (the runtime image: interpreters, libc, stdlib)
    /bin /lib ...   symlinks into /usr (merged-/usr hosts) or read-only binds
    /etc            generated passwd/group/hosts/nsswitch.conf + the host's loader and DNS files
    /proc           a new procfs of the instance's own pid namespace
    /dev            bwrap's minimal /dev (null, zero, full, random, urandom, tty, pts), read-only
    /dev/shm        a private tmpfs of at most 16 MiB
    /opt/nova       nova/__init__.py and nova/agent/ only (read-only)
    /code           the function's code (read-only)
    /tmp            a private tmpfs of a fixed size, the function's writable scratch space
    /               bwrap's tmpfs root, remounted read-only after set-up

On a runtime image (:mod:`nova.images`, ``RootLayout.rootfs``) the image's root is bound
read-only as ``/`` instead of the host's /usr and system directories, and /etc is the image's
own but for the generated files; everything from /proc down is the same.

bwrap resolves every bind source as the *sandbox* user (it does so even for ``--ro-bind-fd``,
through ``realpath``), so the code dir and the agent package must be reachable by uid 65534:
:func:`nova.sandbox.container.setup.check_reachable` says which directory is in the way.
Generated files and the seccomp program come in as pipe fds; bwrap reads and closes each one
before it executes the agent, so no fd of the daemon's reaches the function.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

SANDBOX_UID = 65534  # "nobody" inside the user namespace
SANDBOX_HOSTNAME = "nova"
CODE_DIR = "/code"
TMP_DIR = "/tmp"
AGENT_ROOT = "/opt/nova"  # goes on PYTHONPATH inside
SHM_MAX_BYTES = 16 * 1024 * 1024

# Host files a program may need and that reveal nothing about the host worth hiding: the
# dynamic loader's cache and config, DNS client config, the alternatives symlinks (/usr/bin/*
# may point into /etc/alternatives) and the TLS trust store for when network access exists.
HOST_ETC_FILES: tuple[str, ...] = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/resolv.conf",
    "/etc/ssl/certs",
    "/etc/ca-certificates",
)

# Generated, so that no host account name, home or hostname leaks in.
GENERATED_ETC: dict[str, bytes] = {
    "/etc/passwd": (
        b"root:x:0:0:root:/nonexistent:/usr/sbin/nologin\n"
        b"nobody:x:65534:65534:nobody:/tmp:/usr/sbin/nologin\n"
    ),
    "/etc/group": b"root:x:0:\nnogroup:x:65534:\n",
    "/etc/hosts": b"127.0.0.1\tlocalhost nova\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    "/etc/nsswitch.conf": b"passwd: files\ngroup: files\nhosts: files dns\n",
}


@dataclass(frozen=True, slots=True)
class RootLayout:
    """How the host's top-level system directories map into the sandbox (found once)."""

    symlinks: tuple[tuple[str, str], ...]  # (target, link), e.g. ("usr/bin", "/bin")
    binds: tuple[str, ...]  # real directories, bound read-only at the same path
    etc_files: tuple[str, ...]  # the HOST_ETC_FILES present on this host
    rootfs: str | None = None  # a runtime image's root, bound as / (None: the host's /usr)


@dataclass(frozen=True, slots=True)
class InstanceMounts:
    """What differs between instances: host paths to bind and fds bwrap reads and closes."""

    code_dir: str
    agent_package_init: str  # host path of nova/__init__.py
    agent_package_dir: str  # host path of nova/agent/
    seccomp_fd: int
    etc_data: Mapping[str, int]  # sandbox path -> readable fd with the content
    # network: true only (nova.sandbox.network.networks): bwrap writes the sandbox's pid and namespaces
    # to the first fd, then waits for a byte on the second before it runs the command.
    sync_fds: tuple[int, int] | None = None

    @property
    def fds(self) -> tuple[int, ...]:
        return (self.seccomp_fd, *self.etc_data.values(), *(self.sync_fds or ()))


def bwrap_argv(
    bwrap: str,
    layout: RootLayout,
    mounts: InstanceMounts,
    *,
    tmp_bytes: int,
    env: Mapping[str, str],
    command: Sequence[str],
    keep_caps: Sequence[str] = (),
) -> list[str]:
    """``keep_caps``: a function template's (nova.agent.template), which needs them to give
    each instance it forks namespaces of its own; every other instance keeps none."""
    # Flags and their values stay on one line.
    # fmt: off
    argv = [
        bwrap,
        # Every namespace bwrap can make. Without --unshare-net the instance only has loopback.
        "--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
        "--unshare-cgroup-try",
        # No nested user namespaces even if the seccomp filter were bypassed.
        "--disable-userns",
        "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
        "--hostname", SANDBOX_HOSTNAME,
        # The sandbox dies with bwrap, bwrap dies with the daemon: no orphans. setsid() stops
        # TIOCSTI keystroke injection into a terminal the daemon may have.
        "--die-with-parent", "--new-session",
    ]
    # fmt: on
    argv += [arg for cap in keep_caps for arg in ("--cap-add", cap)] or ["--cap-drop", "ALL"]
    argv.append("--clearenv")
    for key, value in env.items():
        argv += ["--setenv", key, value]
    if layout.rootfs is not None:
        argv += ["--ro-bind", layout.rootfs, "/"]
    else:
        argv += ["--ro-bind", "/usr", "/usr"]
    for target, link in layout.symlinks:
        argv += ["--symlink", target, link]
    for directory in layout.binds:
        argv += ["--ro-bind", directory, directory]
    for path, fd in mounts.etc_data.items():
        argv += ["--ro-bind-data", str(fd), path]
    for path in layout.etc_files:
        if path not in mounts.etc_data:  # generated wins (resolv.conf of networked instances)
            argv += ["--ro-bind-try", path, path]
    if mounts.sync_fds is not None:
        argv += ["--info-fd", str(mounts.sync_fds[0]), "--block-fd", str(mounts.sync_fds[1])]
    # fmt: off
    argv += [
        "--proc", "/proc",
        # bwrap's /dev is a writable tmpfs: keep only /dev/shm (POSIX semaphores and shared
        # memory need it) writable and small, and make the rest read-only.
        "--dev", "/dev",
        "--size", str(min(tmp_bytes, SHM_MAX_BYTES)), "--tmpfs", "/dev/shm",
        "--remount-ro", "/dev",
        "--size", str(tmp_bytes), "--perms", "1777", "--tmpfs", TMP_DIR,
        "--ro-bind", mounts.agent_package_init, f"{AGENT_ROOT}/nova/__init__.py",
        "--ro-bind", mounts.agent_package_dir, f"{AGENT_ROOT}/nova/agent",
        "--ro-bind", mounts.code_dir, CODE_DIR,
        "--remount-ro", "/",
        "--chdir", TMP_DIR,
    ]
    # fmt: on
    argv += ["--seccomp", str(mounts.seccomp_fd)]
    return [*argv, "--", *command]
