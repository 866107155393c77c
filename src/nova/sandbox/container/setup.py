"""Host-side preparation of container instances: what the host looks like (found once), the
fds one instance inherits, and the wrapper that puts it into its cgroups.

Kept apart from :mod:`nova.sandbox.container.backend` (the lifecycle) so each stays one concept.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from nova.core.errors import SandboxError
from nova.sandbox.agent_launch import AGENT_PACKAGE_DIR, PACKAGE_PARENT
from nova.sandbox.base import InstanceSpec
from nova.sandbox.container import bwrap as bw
from nova.sandbox.linux.cgroups import CgroupLayout
from nova.sandbox.network.rules import RESOLV_CONF

logger = logging.getLogger(__name__)

# The first process of every instance, run by /bin/sh as
#   sh -c WRAPPER_SCRIPT nova-wrapper NOFILE FSIZE_BLOCKS N PROCS_FILE... COMMAND...
# It joins the instance's cgroups *before* exec'ing the sandbox, so no process of the instance
# ever runs unlimited; any failure exits (set -e) before the function could run unconfined.
# dash's `ulimit` sets soft and hard limits together (the function cannot raise them back) and
# counts -f in 512-byte blocks. The agent socket arrives as stdin and is moved to fd 3, where
# the agent expects it (`--fd 3`); single-digit fds are all dash's redirections can name.
WRAPPER_SCRIPT = """set -e
nofile=$1; fsize=$2; n=$3; shift 3
while [ "$n" -gt 0 ]; do echo $$ > "$1"; shift; n=$((n - 1)); done
echo 500 > /proc/self/oom_score_adj
ulimit -n "$nofile"; ulimit -c 0; ulimit -f "$fsize"
exec 3<&0 </dev/null
unset PWD OLDPWD
exec "$@"
"""
# unset: the shell exports PWD (the daemon's working directory, a host path); bwrap's own
# process, PID 1 in the sandbox, would keep it in the environ every function can read.

# Inherited fds are renumbered to at least this, so none of them can sit on 0-9 where the
# wrapper's redirection (fd 3) would clobber it.
_FIRST_INHERITED_FD = 10


@dataclass(frozen=True, slots=True)
class ContainerOptions:
    agent_python: str = "/usr/bin/python3"  # runs the agent inside; must be under /usr
    tmp_mb: int = 64  # /tmp size; tmpfs pages count against memory_mb, so at most half of it
    pids_max: int = 64  # processes + threads, per invocation an instance runs at once
    open_files: int = 1024
    sandbox_uid: int = bw.SANDBOX_UID  # host uid the instance runs as when the daemon is root
    require_cgroups: bool = True  # refuse to start instances without memory/pids limits
    # CPU is capped (proportional to memory) only this long after start: interpreter start-up
    # and handler import run at full speed, as Lambda boosts its init phase.
    cpu_boost_s: float = 2.0

    def pids_for(self, spec: InstanceSpec) -> int:
        """Each concurrent invocation has a worker of its own (Node's has ~8 threads)."""
        return self.pids_max * spec.concurrency


@dataclass(frozen=True, slots=True)
class HostPaths:
    """What the host offers, found once per backend."""

    bwrap: str
    layout: bw.RootLayout
    visible_roots: tuple[str, ...]  # host directories that exist at the same path inside
    drop_to_uid: int | None  # run the chain as this uid (daemon is root), or None (it is not)
    agent_init: Path  # nova/__init__.py and nova/agent as bound into instances (see agent_package)
    agent_dir: Path
    image_id: str = "host"  # "host:<hash>" of the host root the instances see (host_image_id)

    @classmethod
    def discover(cls, sandbox_uid: int) -> HostPaths:
        found = shutil.which("bwrap")
        if found is None:
            raise SandboxError("bwrap not installed: apt-get install bubblewrap")
        layout = root_layout()
        visible = ("/usr", *layout.binds, *(link for _, link in layout.symlinks))
        drop_to_uid = sandbox_uid if os.geteuid() == 0 else None
        return cls(
            found, layout, visible, drop_to_uid, *agent_package(drop_to_uid), host_image_id(layout)
        )

    def privilege_drop(self) -> list[str]:
        """The setpriv prefix that makes the rest of the chain an unprivileged host user."""
        if self.drop_to_uid is None:
            return []
        uid = str(self.drop_to_uid)
        return [
            "setpriv",
            f"--reuid={uid}",
            f"--regid={uid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
            "--",
        ]


def host_image_id(layout: bw.RootLayout) -> str:
    """Identify the host root instances see: the bind layout plus the installed package set
    (dpkg's status file changes whenever a package is installed, removed or upgraded)."""
    digest = hashlib.sha256(repr(layout).encode())
    for marker in ("/var/lib/dpkg/status", "/usr/bin/python3", "/usr/bin/node"):
        with contextlib.suppress(OSError):
            st = os.stat(marker)
            digest.update(f"{marker}:{st.st_size}:{st.st_mtime_ns}".encode())
    return f"host:{digest.hexdigest()[:12]}"


def root_layout() -> bw.RootLayout:
    """How the host's top-level system directories map into a sandbox (container and gVisor)."""
    symlinks, binds = [], []
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            symlinks.append((os.readlink(top), top))
        elif os.path.isdir(top):
            binds.append(top)
    etc = tuple(p for p in bw.HOST_ETC_FILES if os.path.exists(p))
    return bw.RootLayout(tuple(symlinks), tuple(binds), etc)


def instance_cgroups(require: bool, unlimited: str) -> CgroupLayout | None:
    """Where instance cgroups go; None (limits off, logged as ``unlimited``) only if allowed."""
    try:
        layout = CgroupLayout.detect()
        layout.prepare()
    except (OSError, SandboxError) as exc:
        if require:
            raise SandboxError(f"cannot apply per-instance limits: {exc}") from exc
        logger.warning("%s: %s", unlimited, exc)
        return None
    return layout


def host_setup(options: ContainerOptions) -> tuple[HostPaths, CgroupLayout | None]:
    """What this host offers and where instance cgroups go (None: no limits, if allowed)."""
    unlimited = "container instances run WITHOUT memory/pids/CPU limits"
    return HostPaths.discover(options.sandbox_uid), instance_cgroups(
        options.require_cgroups, unlimited
    )


class SeesHostRoots(Protocol):
    @property
    def visible_roots(self) -> tuple[str, ...]: ...


def check_interpreter(interpreter: str, host: SeesHostRoots, kind: str = "container") -> None:
    """The interpreter is a host path; it must exist at the same path inside the sandbox, i.e.
    both its path and its resolved target must lie in what the sandbox binds (/usr ...)."""
    path = os.path.normpath(interpreter)
    real = os.path.realpath(path)
    hidden = [p for p in (path, real) if not _under(p, host.visible_roots)]
    if hidden or not os.path.isabs(path):
        raise SandboxError(
            f"interpreter {interpreter} is outside what a {kind} instance sees "
            f"({', '.join(host.visible_roots)}): install the runtime from the distribution "
            "(e.g. apt-get install python3 nodejs) or use another backend"
        )
    if not os.access(real, os.X_OK):
        raise SandboxError(f"interpreter {interpreter} is not executable")


def _under(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == root or path.startswith(root + "/") for root in roots)


def check_reachable(path: Path, uid: int | None, *, directory: bool) -> None:
    """bwrap resolves bind sources as the sandbox user: every directory above ``path`` must be
    searchable by ``uid`` and ``path`` itself readable (POSIX mode bits; ACLs are not read).
    Raise SandboxError naming the directory in the way."""
    if uid is None:
        return  # the chain runs as the daemon's own user, which put the files there
    real = Path(os.path.realpath(path))
    for parent in reversed(real.parents):
        if not _allows(parent, uid, stat.S_IXUSR):
            raise SandboxError(
                f"the sandbox user (uid {uid}) cannot reach {path}: {parent} is not searchable "
                f"by it (chmod o+x {parent}, or keep Nova's files outside it)"
            )
    wanted = stat.S_IRUSR | (stat.S_IXUSR if directory else 0)
    if not _allows(real, uid, wanted):
        raise SandboxError(f"the sandbox user (uid {uid}) cannot read {path}")


def _allows(path: Path, uid: int, owner_bits: int) -> bool:
    st = os.stat(path)
    if st.st_uid == uid:
        bits = owner_bits
    elif st.st_gid == uid:  # nobody's group is nogroup (65534) on Debian
        bits = owner_bits >> 3
    else:
        bits = owner_bits >> 6
    return st.st_mode & bits == bits


@dataclass(slots=True)
class InstanceFiles:
    """The mounts of one instance and the pipe fds it inherits (close-on-exec in the daemon;
    Popen's pass_fds makes them inheritable in the child only). Close them once bwrap runs."""

    mounts: bw.InstanceMounts
    opened: list[int] = field(default_factory=list)

    @property
    def inherited(self) -> tuple[int, ...]:
        return self.mounts.fds

    def close(self) -> None:
        for fd in self.opened:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.opened.clear()


def open_instance_files(
    spec: InstanceSpec,
    code_dir: Path,  # the host directory to bind read-only at /code
    host: HostPaths,
    seccomp_program: bytes | None,  # None: no filter (a function template applies it per fork)
    sync_fds: tuple[int, int] | None = None,  # network: true (nova.sandbox.network.networks)
) -> InstanceFiles:
    check_reachable(code_dir, host.drop_to_uid, directory=True)
    opened: list[int] = []
    etc = bw.GENERATED_ETC
    if spec.network:  # the host's resolver may be on its loopback, which is not the instance's
        etc = {**etc, "/etc/resolv.conf": RESOLV_CONF}

    def data(content: bytes) -> int:
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        opened.append(read_end)
        try:
            os.write(write_end, content)  # a few hundred bytes: below the pipe buffer
        finally:
            os.close(write_end)
        if read_end < _FIRST_INHERITED_FD:
            high = fcntl.fcntl(read_end, fcntl.F_DUPFD_CLOEXEC, _FIRST_INHERITED_FD)
            opened.append(high)
            return high
        return read_end

    try:
        mounts = bw.InstanceMounts(
            code_dir=str(code_dir),
            agent_package_init=str(host.agent_init),
            agent_package_dir=str(host.agent_dir),
            seccomp_fd=None if seccomp_program is None else data(seccomp_program),
            etc_data={path: data(content) for path, content in etc.items()},
            sync_fds=sync_fds,
        )
    except BaseException:
        InstanceFiles(bw.InstanceMounts("", "", "", -1, {}), opened).close()
        raise
    return InstanceFiles(mounts, opened)


def agent_package(uid: int | None) -> tuple[Path, Path]:
    """(nova/__init__.py, nova/agent) to bind into instances, as paths the sandbox user can read.

    A checkout the sandbox user cannot reach (a clone under /root, say) is served from a staged
    copy in the system temp dir, named by content hash so every daemon of the same version
    shares it and a changed agent never reuses a stale one.
    """
    init_file, agent_dir = PACKAGE_PARENT / "nova" / "__init__.py", AGENT_PACKAGE_DIR
    try:
        check_reachable(init_file, uid, directory=False)
        check_reachable(agent_dir, uid, directory=True)
    except SandboxError:
        staged = _stage_agent_package(init_file, agent_dir)
        return staged / "nova" / "__init__.py", staged / "nova" / "agent"
    return init_file, agent_dir


def _stage_agent_package(init_file: Path, agent_dir: Path) -> Path:
    sources = [
        init_file,
        *sorted(p for p in agent_dir.rglob("*") if p.is_file() and "__pycache__" not in p.parts),
    ]
    digest = hashlib.sha256()
    for source in sources:
        digest.update(
            str(source.relative_to(PACKAGE_PARENT)).encode() + b"\0" + source.read_bytes()
        )
    target = Path(tempfile.gettempdir()) / f"nova-agent-{digest.hexdigest()[:16]}"
    if target.is_dir():
        return target
    staging = Path(tempfile.mkdtemp(prefix=".nova-agent-", dir=target.parent))
    for source in sources:
        copy = staging / source.relative_to(PACKAGE_PARENT)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, copy)
        copy.chmod(0o644)
    for directory in (staging, *(p for p in staging.rglob("*") if p.is_dir())):
        directory.chmod(0o755)
    try:
        os.rename(staging, target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)  # a concurrent daemon staged it first
    logger.info(
        "staged the agent package at %s (the checkout is not readable by the sandbox user)", target
    )
    return target


def wrapper_argv(
    host: HostPaths,
    *,
    open_files: int,
    fsize_bytes: int,
    procs_files: list[str],
    sandbox: list[str],
) -> list[str]:
    """The whole chain for one instance: sh wrapper -> [setpriv] -> bwrap ..."""
    return [
        "/bin/sh",
        "-c",
        WRAPPER_SCRIPT,
        "nova-wrapper",
        str(open_files),
        str(max(1, fsize_bytes // 512)),
        str(len(procs_files)),
        *procs_files,
        *host.privilege_drop(),
        *sandbox,
    ]
