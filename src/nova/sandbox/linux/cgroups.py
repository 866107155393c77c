"""Per-instance resource limits through cgroups: v1, v2 and the hybrid layout.

Every instance gets one group per hierarchy at ``<daemon's own cgroup>/nova/<instance_id>``.
Nesting under the daemon's own cgroup (rather than the root) keeps whatever limits the operator
put on the daemon (a systemd unit, a container) in force for its instances too.

- **v1** (and hybrid, where the controllers are v1 and the cgroup2 mount carries none): one
  directory per controller, ``/sys/fs/cgroup/{memory,pids,cpu}/…``; the wrapper that starts an
  instance writes its pid into each ``cgroup.procs``.
- **v2**: one directory. A v2 group with processes in it cannot hand controllers to children
  ("no internal processes"), so if the daemon's own group holds processes, the daemon moves
  itself into a ``<own>/daemon`` leaf once, as container engines do. Under systemd, give the
  unit ``Delegate=yes``.

Every operation here is a handful of small writes to cgroupfs (measured: creating and limiting
the three v1 groups ~0.4 ms, removing them ~0.1 ms); callers still run creation and removal in
a worker thread so a slow kernel never stalls the event loop.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from nova.core.errors import SandboxError

REQUIRED = ("memory", "pids")
OPTIONAL = ("cpu",)
CPU_PERIOD_US = 100_000
MB_PER_VCPU = 1769  # Lambda's ratio: 1769 MB of memory buys one full vCPU
MIN_CPU_FRACTION = 0.10


@dataclass(frozen=True, slots=True)
class CgroupLimits:
    memory_bytes: int
    pids_max: int
    cpu_quota_us: int  # per CPU_PERIOD_US

    @classmethod
    def for_memory(cls, memory_mb: int, *, pids_max: int, cpus: int | None = None) -> CgroupLimits:
        """CPU proportional to memory like Lambda (1769 MB = 1 vCPU), at least 10 % of one CPU
        and at most every CPU of the host."""
        cpus = cpus or os.cpu_count() or 1
        fraction = min(max(memory_mb / MB_PER_VCPU, MIN_CPU_FRACTION), float(cpus))
        return cls(
            memory_bytes=memory_mb * 1024 * 1024,
            pids_max=pids_max,
            cpu_quota_us=round(fraction * CPU_PERIOD_US),
        )


@dataclass(frozen=True, slots=True)
class CgroupLayout:
    """Where Nova's groups live on this host. ``bases`` maps a controller to its parent
    directory (v1: one per controller; v2: all controllers map to the same directory)."""

    version: int
    bases: dict[str, Path]

    @classmethod
    def detect(cls, mountinfo: str | None = None, proc_cgroup: str | None = None) -> CgroupLayout:
        """Read the layout from ``/proc/self/{mountinfo,cgroup}``; raise SandboxError with the
        reason when the limits Nova needs cannot be applied."""
        if mountinfo is None:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        if proc_cgroup is None:
            proc_cgroup = Path("/proc/self/cgroup").read_text()
        v1_mounts, v2_mount = _parse_mountinfo(mountinfo)
        own_v1, own_v2 = _parse_proc_cgroup(proc_cgroup)
        if all(c in v1_mounts for c in REQUIRED):
            bases = {}
            for controller in (*REQUIRED, *OPTIONAL):
                if controller in v1_mounts and controller in own_v1:
                    mountpoint, root = v1_mounts[controller]
                    bases[controller] = _join(mountpoint, root, own_v1[controller]) / "nova"
            return cls(version=1, bases=bases)
        if v2_mount is not None and own_v2 is not None:
            mountpoint, root = v2_mount
            available = (mountpoint / "cgroup.controllers").read_text().split()
            missing = [c for c in REQUIRED if c not in available]
            if missing:
                raise SandboxError(f"cgroup v2 lacks the {', '.join(missing)} controller(s)")
            own = _join(mountpoint, root, own_v2)
            return cls(
                version=2, bases={c: own / "nova" for c in (*REQUIRED, *OPTIONAL) if c in available}
            )
        raise SandboxError("no cgroup hierarchy with the memory and pids controllers is mounted")

    def prepare(self) -> None:
        """Create Nova's parent groups (once, at backend start)."""
        for base in set(self.bases.values()):
            base.mkdir(parents=True, exist_ok=True)
        if self.version == 2:
            self._delegate_v2()

    def _delegate_v2(self) -> None:
        base = next(iter(self.bases.values()))
        wanted = " ".join(f"+{c}" for c in self.bases)
        own = base.parent
        try:
            _write(own / "cgroup.subtree_control", wanted)
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise
            # The daemon sits in its own group: step down into a leaf, then delegate.
            leaf = own / "daemon"
            leaf.mkdir(exist_ok=True)
            _write(leaf / "cgroup.procs", str(os.getpid()))
            _write(own / "cgroup.subtree_control", wanted)
        _write(base / "cgroup.subtree_control", wanted)

    def release(self) -> None:
        """Remove Nova's parent groups if no instance is left in them (daemon shutdown)."""
        for base in set(self.bases.values()):
            with contextlib.suppress(OSError):
                base.rmdir()

    def create(self, instance_id: str, limits: CgroupLimits) -> InstanceCgroup:
        """Make the instance's group(s) and set the limits; nothing is in them yet."""
        group = InstanceCgroup(self.version, {c: b / instance_id for c, b in self.bases.items()})
        try:
            group.apply(limits)
        except OSError as exc:
            group.remove()
            raise SandboxError(f"cannot set cgroup limits for {instance_id}: {exc}") from exc
        return group


class InstanceCgroup:
    """One instance's group(s)."""

    def __init__(self, version: int, dirs: dict[str, Path]) -> None:
        self.version = version
        self.dirs = dirs

    @property
    def procs_files(self) -> tuple[Path, ...]:
        """The ``cgroup.procs`` files the starting process must write its own pid into."""
        return tuple(d / "cgroup.procs" for d in self._unique_dirs())

    def _unique_dirs(self) -> list[Path]:
        return list(dict.fromkeys(self.dirs.values()))

    def apply(self, limits: CgroupLimits) -> None:
        """Create the groups with memory and pids limits and a CPU *weight* proportional to
        memory. The hard CPU quota comes later (:meth:`limit_cpu`): at 10 % of a CPU, starting
        the interpreter alone would take ten times longer (like Lambda, init gets a boost)."""
        for directory in self._unique_dirs():
            directory.mkdir(exist_ok=False)
        self.set_limits(limits)

    def set_limits(self, limits: CgroupLimits) -> None:
        """(Re)write memory, pids and CPU weight on existing groups (a standby being claimed)."""
        memory, pids, cpu = self.dirs["memory"], self.dirs["pids"], self.dirs.get("cpu")
        share = limits.cpu_quota_us / CPU_PERIOD_US  # in CPUs
        if self.version == 1:
            # memory.memsw.limit_in_bytes (memory+swap, present with swap accounting) must never
            # be below memory.limit_in_bytes: raise it first when growing, lower it last when
            # shrinking. Capping it too keeps the limit from just pushing pages to swap.
            memsw = memory / "memory.memsw.limit_in_bytes"
            try:
                current = int((memory / "memory.limit_in_bytes").read_text())
            except FileNotFoundError:  # not created yet by the kernel (or a test's fake tree)
                current = 0
            if limits.memory_bytes > current:
                _write_if_present(memsw, str(limits.memory_bytes))
            _write(memory / "memory.limit_in_bytes", str(limits.memory_bytes))
            _write_if_present(memsw, str(limits.memory_bytes))
            _write(pids / "pids.max", str(limits.pids_max))
            if cpu is not None:
                _write(cpu / "cpu.shares", str(max(2, round(1024 * share))))  # 1024 = 1 CPU
        else:
            _write(memory / "memory.max", str(limits.memory_bytes))
            _write_if_present(memory / "memory.swap.max", "0")
            _write(pids / "pids.max", str(limits.pids_max))
            if cpu is not None:
                _write(cpu / "cpu.weight", str(min(10_000, max(1, round(100 * share)))))

    def limit_cpu(self, quota_us: int) -> None:
        """Cap CPU time at ``quota_us`` per CPU_PERIOD_US (one small cgroupfs write)."""
        self._set_cpu_quota(str(quota_us), str(quota_us))

    def lift_cpu_limit(self) -> None:
        """No CPU cap (a start-up boost, until the next :meth:`limit_cpu`)."""
        self._set_cpu_quota("-1", "max")

    def _set_cpu_quota(self, v1_quota: str, v2_quota: str) -> None:
        cpu = self.dirs.get("cpu")
        if cpu is None:
            return
        try:
            if self.version == 1:
                _write(cpu / "cpu.cfs_period_us", str(CPU_PERIOD_US))
                _write(cpu / "cpu.cfs_quota_us", v1_quota)
            else:
                _write(cpu / "cpu.max", f"{v2_quota} {CPU_PERIOD_US}")
        except FileNotFoundError:
            pass  # the instance is already gone

    def oom_kills(self) -> int:
        """The kernel's count of processes OOM-killed in this group (0 if it cannot tell)."""
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        try:
            text = (self.dirs["memory"] / name).read_text()
        except OSError:
            return 0
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def memory_bytes(self) -> int:
        """Memory charged to the group now (0 if it cannot tell)."""
        name = "memory.usage_in_bytes" if self.version == 1 else "memory.current"
        try:
            return int((self.dirs["memory"] / name).read_text())
        except (OSError, ValueError):
            return 0

    def pids(self) -> list[int]:
        found: set[int] = set()
        for procs in self.procs_files:
            with contextlib.suppress(FileNotFoundError):
                found.update(int(p) for p in procs.read_text().split())
        return sorted(found)

    def kill_all(self, attempts: int = 50) -> None:
        """SIGKILL every process in the group until it is empty (blocking, bounded)."""
        kill_file = self.dirs["memory"] / "cgroup.kill"
        if self.version == 2 and kill_file.exists():
            _write(kill_file, "1")
        for _ in range(attempts):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                self._kill(pid)
            time.sleep(0.002)

    def _kill(self, pid: int) -> None:
        # Pin the process with a pidfd, then make sure it is still ours: a pid read from
        # cgroup.procs may have exited and been reused by a host process in between.
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            return
        try:
            if pid in self.pids():
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        except ProcessLookupError:
            pass
        finally:
            os.close(pidfd)

    def remove(self, timeout_s: float = 2.0) -> None:
        """Remove the group(s); processes that were just killed may take a moment to leave."""
        deadline = time.monotonic() + timeout_s
        for directory in self._unique_dirs():
            while True:
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise SandboxError(f"cannot remove cgroup {directory}: {exc}") from exc
                    time.sleep(0.005)


def _parse_mountinfo(text: str) -> tuple[dict[str, tuple[Path, str]], tuple[Path, str] | None]:
    """v1 controller -> (mountpoint, mount root) and the cgroup2 (mountpoint, root), if any."""
    v1: dict[str, tuple[Path, str]] = {}
    v2: tuple[Path, str] | None = None
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        root, mountpoint = _unescape(fields[3]), Path(_unescape(fields[4]))
        fstype, options = tail[0], tail[2].split(",")
        if fstype == "cgroup":
            for option in options:
                v1.setdefault(option, (mountpoint, root))
        elif fstype == "cgroup2" and v2 is None:
            v2 = (mountpoint, root)
    return v1, v2


def _parse_proc_cgroup(text: str) -> tuple[dict[str, str], str | None]:
    """v1 controller -> own path, and the own v2 path (the ``0::`` line)."""
    v1: dict[str, str] = {}
    v2: str | None = None
    for line in text.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and not controllers:
            v2 = path
        else:
            for controller in controllers.split(","):
                v1[controller] = path
    return v1, v2


def _join(mountpoint: Path, root: str, own: str) -> Path:
    # The mount may expose only a subtree (a container's bind mount or a cgroup namespace):
    # our path is then relative to that subtree's root.
    if root != "/" and (own == root or own.startswith(root + "/")):
        own = own[len(root) :]
    return mountpoint / own.lstrip("/")


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal.
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def _write(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _write_if_present(path: Path, value: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        _write(path, value)
