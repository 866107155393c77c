"""Host-side preparation of gVisor instances: what the host offers (found once), the shared
read-only base root and the runsc command line.

Kept apart from :mod:`nova.sandbox.gvisor.backend` (the lifecycle) so each stays one concept. Where the
container backend's helpers fit they are imported, not copied: the cgroup layout, the host image
id, the staged agent package, the instance's code dir.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from nova.core.errors import SandboxError
from nova.sandbox.container import bwrap as bw
from nova.sandbox.container import setup as container_setup
from nova.sandbox.container.setup import agent_package, host_image_id
from nova.sandbox.linux.cgroups import CgroupLayout

logger = logging.getLogger(__name__)

# The first process of every instance, run by /bin/sh as
#   sh -c GVISOR_WRAPPER nova-gvisor N PROCS_FILE... COMMAND...
# It joins the instance's cgroups *before* exec'ing runsc, so runsc, its gofer, the Sentry and
# every ptrace stub start inside the limits; any failure exits (set -e) before runsc runs. The
# container wrapper's ulimits are not applied here: they would bind the Sentry (a file-size
# limit on its memory file, an fd limit on the gofer), so the function's rlimits are applied by
# the Sentry instead (see nova.sandbox.gvisor.spec). stdin (the agent socket) is left in place:
# runsc hands its stdio to the sandbox, where the agent reads it as fd 0.
GVISOR_WRAPPER = """set -e
n=$1; shift
while [ "$n" -gt 0 ]; do echo $$ > "$1"; shift; n=$((n - 1)); done
echo 500 > /proc/self/oom_score_adj
exec "$@"
"""


@dataclass(frozen=True, slots=True)
class GvisorOptions:
    agent_python: str = "/usr/bin/python3"  # runs the agent inside; must be under /usr
    platform: str = "ptrace"  # the only one that works without real KVM (SANDBOX-FACTS.md)
    tmp_mb: int = 64  # /tmp size; tmpfs pages count against memory_mb, so at most half of it
    # Processes + threads per invocation an instance runs at once (RLIMIT_NPROC in the Sentry).
    pids_max: int = 64
    open_files: int = 1024
    require_cgroups: bool = True  # refuse to start instances without memory/host-task limits
    cpu_boost_s: float = 2.0  # as ContainerOptions: the CPU quota applies after init
    # What gVisor itself costs on the host (Sentry, gofer, runsc), charged to the instance's
    # memory cgroup on top of memory_mb. Calibrated so a function gets what it gets on the
    # container backend: at memory_mb=128 the largest allocation that works is 112 MB on both
    # (idle instance: 34 MB here against 12 MB in a container).
    overhead_mb: int = 24
    # Host tasks (threads) the sandbox may create: gVisor itself uses ~40 (Sentry and gofer Go
    # threads), and every process of the function adds a ptrace stub with about six host
    # threads (measured: 63 sleeping children -> 425 host tasks). The function's own limit is
    # pids_max, enforced inside; this only keeps a broken Sentry from exhausting the host.
    host_tasks_base: int = 96
    host_tasks_per_process: int = 8


@dataclass(frozen=True, slots=True)
class GvisorHost:
    """What the host offers, found once per backend."""

    runsc: str
    setpriv: str  # --pdeathsig: the chain dies with the daemon
    unshare: str  # a pid namespace around runsc (see runsc_argv)
    layout: bw.RootLayout
    visible_roots: tuple[str, ...]  # host directories that exist at the same path inside
    agent_init: Path
    agent_dir: Path
    base_root: Path
    image_id: str

    @classmethod
    def discover(cls) -> GvisorHost:
        runsc = shutil.which("runsc")
        if runsc is None:
            raise SandboxError("runsc not installed: apt-get install runsc")
        if os.geteuid() != 0:
            # runsc builds the sandbox's namespaces, chroot and uid map as root and then runs
            # the Sentry as nobody; --rootless skips part of that and is not offered.
            raise SandboxError("the gvisor backend needs the daemon to run as root")
        setpriv, unshare = shutil.which("setpriv"), shutil.which("unshare")
        if setpriv is None or unshare is None:
            raise SandboxError("setpriv/unshare not installed: apt-get install util-linux")
        layout = container_setup.root_layout()
        # The function (uid 65534 inside) must be able to read the package files. Their host
        # parents do not matter to gVisor (the gofer opens them), but agent_package's test
        # (reachable by nobody, else a world-readable staged copy) is sufficient here too.
        agent_init, agent_dir = agent_package(bw.SANDBOX_UID)
        return cls(
            runsc=runsc,
            setpriv=setpriv,
            unshare=unshare,
            layout=layout,
            visible_roots=("/usr", *layout.binds, *(link for _, link in layout.symlinks)),
            agent_init=agent_init,
            agent_dir=agent_dir,
            base_root=base_root(layout),
            image_id=host_image_id(layout),
        )

    def runsc_argv(
        self, platform: str, state_dir: Path, bundle: Path, container_id: str
    ) -> list[str]:
        """setpriv -> unshare -> ``runsc run`` of one instance (attached: runsc lives as long
        as the sandbox, and its gofer and Sentry die with it).

        The pid namespace makes runsc the init of everything the sandbox spawns on the host
        (gofer, Sentry, ptrace stubs): SIGKILL to runsc makes the kernel kill *and reap* them
        all, and unshare, which reaps runsc, exits by itself. Without it, killing runsc orphans
        them to the host's pid 1, which may never reap them (this machine's does not).
        """
        # fmt: off
        return [
            # The chain dies with the daemon thread that started it, as bwrap's
            # --die-with-parent does for containers; --kill-child passes that on to runsc.
            self.setpriv, "--pdeathsig", "KILL", "--",
            self.unshare, "--pid", "--fork", "--kill-child", "--mount-proc",
            self.runsc,
            f"--root={state_dir}",  # per instance: its state goes away with its work dir
            f"--platform={platform}",
            "--network=none",  # loopback only, inside gVisor's netstack
            "--ignore-cgroups",  # the wrapper already put the chain in the instance's cgroups
            "--oci-seccomp",  # apply linux.seccomp inside the Sentry (see gvisor/spec.py)
            # The base root and the system binds never change under a running instance: let
            # gVisor cache them instead of revalidating every lookup with the gofer (measured:
            # a start that imports json, http.client, email, asyncio ... 557 vs 603 ms). The
            # code mount alone is revalidated, so a hot reload shows (see gvisor/spec.py).
            "--file-access=exclusive", "--file-access-mounts=exclusive",
            "run", f"--bundle={bundle}", container_id,
        ]
        # fmt: on


def host_setup(options: GvisorOptions) -> tuple[GvisorHost, CgroupLayout | None]:
    """What this host offers and where instance cgroups go (None: no limits, if allowed)."""
    unlimited = "gVisor instances run WITHOUT memory/host-task/CPU limits"
    return GvisorHost.discover(), container_setup.instance_cgroups(
        options.require_cgroups, unlimited
    )


def base_root(layout: bw.RootLayout) -> Path:
    """The read-only root every instance shares: symlinks into /usr, the generated /etc files
    and an empty mount point for every bind. Built once per layout, named by content hash.

    It lives in a directory only the daemon's user can enter (0700): the gofer that serves it
    runs as that user, and nobody else on the host can swap it under a sandbox.
    """
    points = mount_points(layout)
    description = json.dumps(
        [layout.symlinks, points, sorted((k, v.hex()) for k, v in bw.GENERATED_ETC.items())]
    )
    digest = hashlib.sha256(description.encode()).hexdigest()[:16]
    parent = _private_dir(Path(tempfile.gettempdir()) / f"nova-gvisor-{os.geteuid()}")
    target = parent / f"root-{digest}"
    if target.is_dir():
        return target
    staging = Path(tempfile.mkdtemp(prefix=".root-", dir=parent))
    staging.chmod(0o755)
    for link_target, link in layout.symlinks:
        (staging / link.lstrip("/")).symlink_to(link_target)
    for path, is_dir in points:
        inside = staging / path.lstrip("/")
        inside.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        if is_dir:
            inside.mkdir(mode=0o755, exist_ok=True)
        else:
            inside.touch(mode=0o644)
    for path, content in bw.GENERATED_ETC.items():
        inside = staging / path.lstrip("/")
        inside.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        inside.write_bytes(content)
    # Explicit modes, whatever the daemon's umask: gVisor checks them against uid 65534.
    for entry in staging.rglob("*"):
        if not entry.is_symlink():
            entry.chmod(0o755 if entry.is_dir() else 0o644)
    try:
        os.rename(staging, target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)  # a concurrent daemon built it first
    return target


def mount_points(layout: bw.RootLayout) -> tuple[tuple[str, bool], ...]:
    """Every (path, is_directory) the base root holds so that each mount has a target: the
    root is read-only to runsc, which would otherwise create them."""
    points: list[tuple[str, bool]] = [
        ("/proc", True),
        ("/dev", True),
        ("/sys", True),
        ("/usr", True),
        (bw.TMP_DIR, True),
        (bw.CODE_DIR, True),
        (f"{bw.AGENT_ROOT}/nova/agent", True),
        (f"{bw.AGENT_ROOT}/nova/__init__.py", False),
    ]
    points += [(directory, True) for directory in layout.binds]
    points += [(path, os.path.isdir(path)) for path in layout.etc_files]
    return tuple(points)


def _private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, exist_ok=True)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise SandboxError(
            f"{path} is not a private directory of uid {os.geteuid()} (mode "
            f"{stat.filemode(st.st_mode)}, owner {st.st_uid}); remove it and restart"
        )
    return path


def check_interpreter(interpreter: str, host: GvisorHost) -> None:
    """As for containers: the interpreter must lie in what the sandbox binds (/usr ...)."""
    container_setup.check_interpreter(interpreter, host, kind="gVisor")


def wrapper_argv(procs_files: list[str], command: list[str]) -> list[str]:
    """The whole chain for one instance: sh wrapper -> setpriv -> unshare -> runsc run ..."""
    return [
        "/bin/sh",
        "-c",
        GVISOR_WRAPPER,
        "nova-gvisor",
        str(len(procs_files)),
        *procs_files,
        *command,
    ]
