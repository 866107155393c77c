"""The gVisor backend: each instance runs the agent under ``runsc``, on gVisor's own kernel.

Start-up chain of one instance::

    daemon ──spawn──> /bin/sh wrapper (root)        joins the instance's cgroups
                        │ exec
                        v
                      setpriv --pdeathsig KILL      the chain dies with the daemon
                        │ exec
                        v
                      unshare --pid --fork          a pid namespace, so that killing runsc
                        │ fork                      kills and reaps everything below it
                        v
                      runsc run (attached)          reads the OCI bundle (gvisor_spec)
                        ├── gofer                   serves /usr, /code, ... read-only
                        └── Sentry (uid nobody, own namespaces, host seccomp)
                              └── agent  /usr/bin/python3 -S -m nova.agent --fd 0
                                  (uid 65534, no capabilities, no_new_privs, deny list)

Why the wrapper joins the cgroups instead of runsc (``linux.resources`` in the spec): measured
here, runsc 2022-12 *can* apply OCI resources on this hybrid v1/v2 host, but it makes groups in
every v1 controller from the cgroup root (outside the daemon's own group, so not under the
daemon's own limits) and leaves the parents behind; the wrapper reuses the container backend's
:class:`~nova.sandbox.cgroups.CgroupLayout` (v1, v2, hybrid, nested under the daemon) and puts
runsc, the gofer, the Sentry and every ptrace stub in the group before any of them runs.

Why the agent reads fd 0: runsc 2022-12 has no ``--preserve-fds``; it hands the sandbox only
its own stdio. The agent socket is runsc's stdin, the agent takes it as fd 0 (its workers never
inherit the agent's stdin). A shell inside that moved it to fd 3 would add an exec under ptrace:
measured +26 ms per start.

Limits: memory (memory_mb + the sandbox's own overhead), host tasks and CPU by cgroup on the
host; processes, open files, file size and core dumps by rlimits the Sentry enforces. Memory is
the one limit that differs from containers: the function's memory lives in the Sentry's memory
file, so the host's OOM killer ends the whole sandbox, not just the worker. The invocation fails
with ``Function.OutOfMemory`` (the cgroup counted the kill) and the pool starts a new instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from nova.core.errors import SandboxError
from nova.sandbox import bwrap as bw
from nova.sandbox.agent_launch import agent_argv, agent_env
from nova.sandbox.base import BackendInfo, InstanceSpec, SandboxInstance
from nova.sandbox.cgroups import CgroupLayout, CgroupLimits, InstanceCgroup
from nova.sandbox.container import tmp_size_bytes
from nova.sandbox.container_setup import remove_scratch_code
from nova.sandbox.gvisor_probe import probe
from nova.sandbox.gvisor_setup import (
    GvisorHost,
    GvisorOptions,
    check_interpreter,
    host_setup,
    readable_code_dir,
    wrapper_argv,
)
from nova.sandbox.gvisor_spec import SpecLimits, SpecMounts, oci_spec

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
# runsc's container ids; runsc also names the sandbox's control socket after it, in the host's
# abstract socket namespace, so it must be unique on the host, not only in this daemon.
_CONTAINER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,100}")


class GvisorBackend:
    def __init__(self, max_message_bytes: int, options: GvisorOptions | None = None) -> None:
        self._max_message_bytes = max_message_bytes
        self._options = options or GvisorOptions()
        self._instances: dict[str, GvisorInstance] = {}
        self._info = probe(self._options)
        self._host: GvisorHost | None = None
        self._cgroups: CgroupLayout | None = None
        if self._info.available:
            self._host, self._cgroups = host_setup(self._options)

    @classmethod
    def probe(cls, options: GvisorOptions | None = None) -> BackendInfo:
        """Can this host run gVisor instances? Runs a trivial sandbox once (cached)."""
        return probe(options or GvisorOptions())

    @property
    def info(self) -> BackendInfo:
        return self._info

    async def start(self, spec: InstanceSpec) -> SandboxInstance:
        if not self._info.available or self._host is None:
            raise SandboxError(f"the gvisor backend is unavailable: {self._info.reason}")
        if spec.network:
            raise SandboxError(
                "network access for gvisor instances is not available yet: functions with "
                "network: true need another backend until per-instance networking lands"
            )
        check_interpreter(spec.interpreter, self._host)
        if not _CONTAINER_ID.fullmatch(spec.instance_id):
            raise SandboxError(f"instance id {spec.instance_id!r} is not a valid runsc id")
        preparing = asyncio.ensure_future(asyncio.to_thread(self._prepare, spec))
        try:
            prepared = await asyncio.shield(preparing)
        except asyncio.CancelledError:
            # The thread runs on regardless: release what it creates once it is done.
            preparing.add_done_callback(functools.partial(_release_prepared, spec))
            raise
        host_end, agent_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # On the event-loop thread on purpose: --pdeathsig follows the *thread* that forked
            # the chain, and this one lives as long as the daemon.
            process = subprocess.Popen(  # noqa: ASYNC220 (see above)
                prepared.argv,
                stdin=agent_end.fileno(),  # runsc passes it to the agent as fd 0
                stdout=prepared.log_fd,
                stderr=prepared.log_fd,
                env={"PATH": "/usr/bin:/bin"},
                start_new_session=True,  # the daemon's Ctrl-C must not reach instances
            )
        except OSError as exc:
            host_end.close()
            await asyncio.to_thread(_discard, spec, prepared.cgroup)
            raise SandboxError(f"could not start runsc for {spec.function_name}: {exc}") from exc
        finally:
            agent_end.close()
            os.close(prepared.log_fd)
        host_end.setblocking(False)
        instance = GvisorInstance(
            spec, process, host_end, prepared.cgroup, self._instances, self._host
        )
        self._instances[spec.instance_id] = instance
        if prepared.cgroup is not None:
            instance.limit_cpu_after(self._options.cpu_boost_s, prepared.cpu_quota_us)
        return instance

    def _prepare(self, spec: InstanceSpec) -> _Prepared:
        """Blocking set-up, in a worker thread: work dir, cgroups, the bundle and the argv."""
        assert self._host is not None  # start() checked
        host, options = self._host, self._options
        spec.work_dir.mkdir(parents=True, exist_ok=True)
        cpu_quota_us = CgroupLimits.for_memory(spec.memory_mb, pids_max=1).cpu_quota_us
        limits = CgroupLimits(
            memory_bytes=(spec.memory_mb + options.overhead_mb) * MIB,
            pids_max=options.host_tasks_base + options.host_tasks_per_process * options.pids_max,
            cpu_quota_us=cpu_quota_us,  # proportional to memory_mb, not to the overhead
        )
        cgroup = self._cgroups.create(spec.instance_id, limits) if self._cgroups else None
        try:
            tmp_bytes = tmp_size_bytes(options.tmp_mb, spec.memory_mb)
            config = oci_spec(
                str(host.base_root),
                host.layout,
                SpecMounts(str(readable_code_dir(spec)), str(host.agent_init), str(host.agent_dir)),
                SpecLimits(tmp_bytes, options.pids_max, options.open_files),
                env=agent_env(bw.AGENT_ROOT, bw.TMP_DIR),
                command=agent_argv(options.agent_python, 0, self._max_message_bytes),
            )
            bundle, state = _bundle_dir(spec), _state_dir(spec)
            bundle.mkdir(mode=0o700)
            state.mkdir(mode=0o700)
            (bundle / "config.json").write_text(json.dumps(config))
            runsc = host.runsc_argv(options.platform, state, bundle, container_id(spec))
            procs = [str(p) for p in cgroup.procs_files] if cgroup else []
            log_fd = os.open(
                spec.work_dir / "agent.log",
                os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                0o600,
            )
        except BaseException:
            _discard(spec, cgroup)
            raise
        return _Prepared(wrapper_argv(procs, runsc), log_fd, cgroup, cpu_quota_us)

    async def close(self) -> None:
        await asyncio.gather(*(i.kill() for i in list(self._instances.values())))
        if self._cgroups is not None:
            await asyncio.to_thread(self._cgroups.release)


class GvisorInstance:
    def __init__(
        self,
        spec: InstanceSpec,
        process: subprocess.Popen[bytes],
        sock: socket.socket,
        cgroup: InstanceCgroup | None,
        registry: dict[str, GvisorInstance],
        host: GvisorHost,
    ) -> None:
        self._spec = spec
        self._host = host
        self._process = process
        self._sock = sock
        self._cgroup = cgroup
        self._registry = registry
        self._killed = False
        self._cpu_timer: asyncio.TimerHandle | None = None

    @property
    def instance_id(self) -> str:
        return self._spec.instance_id

    @property
    def sock(self) -> socket.socket:
        return self._sock

    @property
    def pid(self) -> int | None:
        return self._process.pid  # unshare (runsc's parent), on the host

    @property
    def code_dir(self) -> str:
        return bw.CODE_DIR

    @property
    def tmp_dir(self) -> str:
        return bw.TMP_DIR

    @property
    def image_id(self) -> str:
        return self._host.image_id

    def limit_cpu_after(self, delay_s: float, quota_us: int) -> None:
        if self._cgroup is None:
            return
        # One cgroupfs write (~20 µs): cheap enough for the event loop.
        loop = asyncio.get_running_loop()
        self._cpu_timer = loop.call_later(delay_s, self._cgroup.limit_cpu, quota_us)

    def alive(self) -> bool:
        return not self._killed and self._process.poll() is None

    def oom_kills(self) -> int:
        # One small read of cgroupfs (~20 µs).
        return self._cgroup.oom_kills() if self._cgroup is not None else 0

    async def kill(self) -> None:
        if self._killed:
            return
        self._killed = True
        self._registry.pop(self.instance_id, None)
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
        await asyncio.to_thread(_discard, self._spec, self._cgroup)

    def _teardown(self) -> None:
        # SIGKILL runsc, the init of the instance's pid namespace: the kernel then kills and
        # reaps the gofer, the Sentry and every ptrace stub, and unshare, which reaps runsc,
        # exits by itself. No RPC to a Sentry that may be wedged, no `runsc delete` (0.3 s
        # here): runsc's state (a lock and a state file) is in the work dir, which _discard
        # removes with the cgroup sweep as the backstop.
        outer = self._process.pid
        for child in _children(outer):
            _kill_if_child(child, outer)
        try:
            self._process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                logger.error("unshare of instance %s ignored SIGKILL for 5 s", self.instance_id)

    def _log_tail(self, limit: int = 2000) -> str:
        try:
            data = (self._spec.work_dir / "agent.log").read_bytes()[-limit:]
        except OSError:
            return "(no log)"
        return data.decode(errors="replace").strip() or "(empty log)"


@dataclass(slots=True)
class _Prepared:
    argv: list[str]
    log_fd: int
    cgroup: InstanceCgroup | None
    cpu_quota_us: int


def container_id(spec: InstanceSpec) -> str:
    return f"nova-{spec.instance_id}"


def _bundle_dir(spec: InstanceSpec) -> Path:
    return spec.work_dir / "bundle"


def _state_dir(spec: InstanceSpec) -> Path:
    return spec.work_dir / "runsc"


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []  # already gone, or no CONFIG_PROC_CHILDREN: unshare is killed instead


def _kill_if_child(pid: int, parent: int) -> None:
    # Pin the process first, then check it is still unshare's child: only then is the pid not
    # one that was reused by an unrelated process in between.
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        if pid in _children(parent):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    except ProcessLookupError:
        pass
    finally:
        os.close(pidfd)


def _release_prepared(spec: InstanceSpec, done: asyncio.Future[_Prepared]) -> None:
    if done.cancelled() or done.exception() is not None:
        return
    prepared = done.result()
    os.close(prepared.log_fd)
    # Off the loop: removing groups may wait for the kernel.
    threading.Thread(target=_discard, args=(spec, prepared.cgroup), daemon=True).start()


def _discard(spec: InstanceSpec, cgroup: InstanceCgroup | None) -> None:
    if cgroup is not None:
        cgroup.kill_all()
        cgroup.remove()
    shutil.rmtree(spec.work_dir, ignore_errors=True)
    remove_scratch_code(spec.instance_id)


__all__ = ["GvisorBackend", "GvisorInstance", "GvisorOptions"]
