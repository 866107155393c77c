"""What container and gVisor instances share: a host process that is (or starts) the init of
the instance's pid namespace, cgroups that limit it, a work dir, and the way all of it is torn
down without leaving zombies, groups or files behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from nova.sandbox.base import InstanceSpec
from nova.sandbox.container import bwrap as bw
from nova.sandbox.instance_code import instance_code_dir, remove_instance_code, replace_code_dir
from nova.sandbox.linux.cgroups import InstanceCgroup

logger = logging.getLogger(__name__)
P = TypeVar("P")  # what a backend's blocking preparation produces


class NamespacedInstance:
    def __init__(
        self,
        spec: InstanceSpec,
        process: subprocess.Popen[bytes],
        sock: socket.socket,
        cgroup: InstanceCgroup | None,
        forget: Callable[[str], object],
        image_id: str,
    ) -> None:
        self._spec = spec
        self._process = process
        self._sock = sock
        self._cgroup = cgroup
        self._forget = forget  # drops the instance from its backend's registry
        self._image_id = image_id
        self._killed = False
        self._cpu_timer: asyncio.TimerHandle | None = None
        self._cpu_boost: tuple[float, int] | None = None  # (boost_s, quota_us) once limited
        self._name = spec.instance_id  # what the pool calls it; a claimed standby is renamed
        self.code_ms: float | None = None

    @property
    def instance_id(self) -> str:
        return self._name

    @property
    def host_code_dir(self) -> Path:
        """The host directory bound at /code (named by the id it started with: a claimed
        standby or pre-started instance keeps it under its new name)."""
        return instance_code_dir(self._spec.instance_id)

    @property
    def sock(self) -> socket.socket:
        return self._sock

    @property
    def pid(self) -> int | None:
        return self._process.pid  # the outer process (bwrap, or runsc's unshare) on the host

    @property
    def cgroup(self) -> InstanceCgroup | None:
        return self._cgroup

    @property
    def code_dir(self) -> str:
        return bw.CODE_DIR

    @property
    def tmp_dir(self) -> str:
        return bw.TMP_DIR

    @property
    def image_id(self) -> str:
        return self._image_id

    def limit_cpu_after(self, delay_s: float, quota_us: int) -> None:
        """Cap the instance's CPU at ``quota_us`` once its start-up boost of ``delay_s`` is over
        (interpreter start and handler import run at full speed, as Lambda boosts its init)."""
        if self._cgroup is None:
            return
        self._cpu_boost = (delay_s, quota_us)
        if self._cpu_timer is not None:
            self._cpu_timer.cancel()
        # One cgroupfs write (~20 µs): cheap enough for the event loop.
        loop = asyncio.get_running_loop()
        self._cpu_timer = loop.call_later(delay_s, self._cgroup.limit_cpu, quota_us)

    def alive(self) -> bool:
        return not self._killed and self._process.poll() is None

    async def replace_code(self, source: Path) -> None:
        """Also boosts the CPU again, as at start: the workers that Reload starts next import
        the new code at full speed, as a new instance's would (measured at 128 MB here, past
        the boost: 100 ms from Drain to the first reply of a hello, ~12 ms boosted)."""
        # The bind source of /code: the sandbox sees the new files at once (containers share
        # the host's page cache; gVisor revalidates this one mount, see gvisor/spec.py).
        await asyncio.to_thread(replace_code_dir, source, self.host_code_dir)
        if self._cgroup is not None and self._cpu_boost is not None:
            self._cgroup.lift_cpu_limit()  # one cgroupfs write, as limit_cpu
            self.limit_cpu_after(*self._cpu_boost)

    def oom_kills(self) -> int:
        # One small read of cgroupfs (~20 µs).
        return self._cgroup.oom_kills() if self._cgroup is not None else 0

    async def kill(self) -> None:
        if self._killed:
            return
        self._killed = True
        self._forget(self._spec.instance_id)  # the backend's key, fixed at start
        if self._cpu_timer is not None:
            self._cpu_timer.cancel()
        exited_by_itself = self._process.poll()
        try:
            await asyncio.to_thread(self._teardown)
        finally:
            self._sock.close()
        if exited_by_itself and not self.oom_kills():
            logger.warning(
                "instance %s had exited with status %s before it was stopped: %s",
                self.instance_id,
                exited_by_itself,
                self._log_tail(),
            )
        await asyncio.to_thread(discard, self._spec, self._cgroup)

    def _teardown(self) -> None:
        # Kill the pid namespace's init (the outer process's child): the kernel then kills and
        # reaps every process of the namespace, and the outer process, which reaps its child,
        # exits by itself. Killing the outer process first would orphan the init to the host's
        # pid 1, leaving zombies behind. The cgroup sweep in discard() is the backstop.
        outer = self._process.pid
        for child in children(outer):
            kill_if_child(child, outer)
        try:
            self._process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                logger.error("sandbox of instance %s ignored SIGKILL for 5 s", self.instance_id)
        self._after_stop()

    def _after_stop(self) -> None:
        """Release what lives outside the sandbox once its processes are gone (a hook)."""

    def _log_tail(self, limit: int = 2000) -> str:
        try:
            data = (self._spec.work_dir / "agent.log").read_bytes()[-limit:]
        except OSError:
            return "(no log)"
        return data.decode(errors="replace").strip() or "(empty log)"


async def prepare_off_loop(prepare: Callable[[], P], release: Callable[[P], None]) -> P:
    """Run blocking set-up in a thread; if the caller is cancelled meanwhile, the thread runs
    on regardless, so what it creates is released once it is done."""
    preparing = asyncio.ensure_future(asyncio.to_thread(prepare))
    try:
        return await asyncio.shield(preparing)
    except asyncio.CancelledError:

        def release_when_done(done: asyncio.Future[P]) -> None:
            if not done.cancelled() and done.exception() is None:
                release(done.result())

        preparing.add_done_callback(release_when_done)
        raise


def spawn_with_agent_socket(
    argv: list[str], log_fd: int, pass_fds: tuple[int, ...] = ()
) -> tuple[subprocess.Popen[bytes], socket.socket]:
    """Start a sandbox chain whose stdin is the agent's end of a fresh socketpair; return the
    process and the host's end (non-blocking). OSError if it cannot start.

    Call it on the event-loop thread: bwrap's --die-with-parent and setpriv's --pdeathsig
    follow the *thread* that forked the chain, and this one lives as long as the daemon. With
    vfork and no preexec_fn, Popen costs well under a millisecond."""
    host_end, agent_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        process = subprocess.Popen(
            argv,
            stdin=agent_end.fileno(),
            stdout=log_fd,
            stderr=log_fd,
            pass_fds=pass_fds,
            env={"PATH": "/usr/bin:/bin"},
            start_new_session=True,  # the daemon's Ctrl-C must not reach instances
        )
    except OSError:
        host_end.close()
        raise
    finally:
        agent_end.close()
    host_end.setblocking(False)
    return process, host_end


def discard(spec: InstanceSpec, cgroup: InstanceCgroup | None) -> None:
    """Remove everything an instance left on the host: its cgroups, work dir and code copy."""
    if cgroup is not None:
        cgroup.kill_all()
        cgroup.remove()
    shutil.rmtree(spec.work_dir, ignore_errors=True)
    remove_instance_code(spec.instance_id)


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []  # already gone, or a kernel without CONFIG_PROC_CHILDREN: the outer is killed


def kill_if_child(pid: int, parent: int) -> None:
    # Pin the process first, then check it is still the parent's child: only then is the pid
    # not one that was reused by an unrelated process in between.
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        if pid in children(parent):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    except ProcessLookupError:
        pass
    finally:
        os.close(pidfd)
