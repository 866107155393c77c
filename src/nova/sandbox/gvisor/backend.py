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
                      runsc run (attached)          reads the OCI bundle (gvisor/spec.py)
                        ├── gofer                   serves /usr, /code, ... read-only
                        └── Sentry (uid nobody, own namespaces, host seccomp)
                              └── agent  /usr/bin/python3 -S -m nova.agent --fd 0
                                  (uid 65534, no capabilities, no_new_privs, deny list)

Why the wrapper joins the cgroups instead of runsc (``linux.resources`` in the spec): measured
here, runsc 2022-12 *can* apply OCI resources on this hybrid v1/v2 host, but it makes groups in
every v1 controller from the cgroup root (outside the daemon's own group, so not under the
daemon's own limits) and leaves the parents behind; the wrapper reuses the container backend's
:class:`~nova.sandbox.linux.cgroups.CgroupLayout` (v1, v2, hybrid, nested under the daemon) and puts
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
import functools
import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from nova.core.errors import SandboxError
from nova.sandbox.agent_launch import agent_argv, agent_env
from nova.sandbox.base import BackendInfo, InstanceSpec, SandboxInstance
from nova.sandbox.container import bwrap as bw
from nova.sandbox.container.backend import tmp_size_bytes
from nova.sandbox.gvisor.probe import probe
from nova.sandbox.gvisor.setup import (
    GvisorHost,
    GvisorOptions,
    check_interpreter,
    host_setup,
    wrapper_argv,
)
from nova.sandbox.gvisor.spec import SpecLimits, SpecMounts, oci_spec
from nova.sandbox.instance_code import create_instance_code_dir
from nova.sandbox.linux.cgroups import CgroupLayout, CgroupLimits, InstanceCgroup
from nova.sandbox.linux.namespaced import (
    NamespacedInstance,
    discard,
    prepare_off_loop,
    spawn_with_agent_socket,
)

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
        prepared = await prepare_off_loop(
            functools.partial(self._prepare, spec), functools.partial(_release_prepared, spec)
        )
        try:
            # runsc hands the agent socket (its stdin) to the agent as fd 0.
            process, host_end = spawn_with_agent_socket(prepared.argv, prepared.log_fd)
        except OSError as exc:
            await asyncio.to_thread(discard, spec, prepared.cgroup)
            raise SandboxError(f"could not start runsc for {spec.function_name}: {exc}") from exc
        finally:
            os.close(prepared.log_fd)
        instance = GvisorInstance(
            spec, process, host_end, prepared.cgroup, self._forget, self._host.image_id
        )
        instance.code_ms = prepared.code_ms
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
        processes = options.pids_max * spec.concurrency  # a worker per concurrent invocation
        limits = CgroupLimits(
            memory_bytes=(spec.memory_mb + options.overhead_mb) * MIB,
            pids_max=options.host_tasks_base + options.host_tasks_per_process * processes,
            cpu_quota_us=cpu_quota_us,  # proportional to memory_mb, not to the overhead
        )
        cgroup = self._cgroups.create(spec.instance_id, limits) if self._cgroups else None
        try:
            tmp_bytes = tmp_size_bytes(options.tmp_mb, spec.memory_mb)
            # gVisor checks the function's access against the files' own modes (the gofer
            # opens the host path), which the instance's copy sets readable.
            placing = time.perf_counter()
            code_dir = create_instance_code_dir(spec.instance_id, spec.code_dir)
            code_ms = (time.perf_counter() - placing) * 1000
            config = oci_spec(
                str(host.base_root),
                host.layout,
                SpecMounts(str(code_dir), str(host.agent_init), str(host.agent_dir)),
                SpecLimits(tmp_bytes, processes, options.open_files),
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
            discard(spec, cgroup)
            raise
        return _Prepared(wrapper_argv(procs, runsc), log_fd, cgroup, cpu_quota_us, code_ms)

    def _forget(self, instance_id: str) -> None:
        self._instances.pop(instance_id, None)

    async def close(self) -> None:
        await asyncio.gather(*(i.kill() for i in list(self._instances.values())))
        if self._cgroups is not None:
            await asyncio.to_thread(self._cgroups.release)


class GvisorInstance(NamespacedInstance):
    """The outer process is `unshare`; runsc is the init of the instance's pid namespace, so
    killing it takes the gofer, the Sentry and every ptrace stub with it. No `runsc delete`
    (0.3 s here): runsc's state lives in the work dir, which discard() removes."""


@dataclass(slots=True)
class _Prepared:
    argv: list[str]
    log_fd: int
    cgroup: InstanceCgroup | None
    cpu_quota_us: int
    code_ms: float


def container_id(spec: InstanceSpec) -> str:
    return f"nova-{spec.instance_id}"


def _bundle_dir(spec: InstanceSpec) -> Path:
    return spec.work_dir / "bundle"


def _state_dir(spec: InstanceSpec) -> Path:
    return spec.work_dir / "runsc"


def _release_prepared(spec: InstanceSpec, prepared: _Prepared) -> None:
    os.close(prepared.log_fd)
    # Off the loop: removing groups may wait for the kernel.
    threading.Thread(target=discard, args=(spec, prepared.cgroup), daemon=True).start()


__all__ = ["GvisorBackend", "GvisorInstance", "GvisorOptions"]
