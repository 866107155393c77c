"""The container backend: each instance in its own namespaces, cgroups and seccomp filter.

Start-up chain of one instance (one process, three execs, no Python in between)::

    daemon ──spawn──> /bin/sh wrapper (root)          joins the instance's cgroups, sets
                        │ exec                         rlimits, moves the agent socket to fd 3
                        v
                      setpriv (root -> uid 65534)     only when the daemon runs as root: drops
                        │ exec                         every capability and sets no_new_privs
                        v
                      bwrap (uid 65534)               namespaces, read-only root, seccomp
                        │ clone                        (see nova.sandbox.container.bwrap)
                        v
                      agent  /usr/bin/python3 -S -m nova.agent --fd 3

Joining the cgroups in the wrapper, before bwrap exists, means nothing of the instance ever
runs outside its limits. bwrap runs as an unprivileged host uid (not as root with uid 65534
only *inside* the user namespace) so that the function is nobody on the host too: files of
root's that might be reachable are not its own, and a kernel bug in the namespace code yields
nobody, not root.

Isolation: user, pid, mount, network, ipc, uts (and cgroup) namespaces; uid 65534 with no
capabilities and no_new_privs; the deny-list seccomp filter of :mod:`nova.sandbox.linux.seccomp`;
memory, pids and CPU limits by cgroup (:mod:`nova.sandbox.linux.cgroups`); open files, file size and
core dumps by rlimit; only loopback networking.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import cast

from nova.core.counters import DaemonCounters
from nova.core.errors import SandboxError
from nova.images.ports import RuntimeImages
from nova.sandbox.agent_launch import agent_argv, agent_env
from nova.sandbox.base import BackendInfo, InstanceSpec, SandboxInstance
from nova.sandbox.container import bwrap as bw
from nova.sandbox.container.instance import ContainerInstance
from nova.sandbox.container.prestart import PrestartPools, prestart_key
from nova.sandbox.container.probe import probe
from nova.sandbox.container.roots import InstanceRoots
from nova.sandbox.container.setup import (
    ContainerOptions,
    HostPaths,
    InstanceFiles,
    host_setup,
    open_instance_files,
    wrapper_argv,
)
from nova.sandbox.container.snapshot_policy import SnapshotMode, SnapshotPolicy
from nova.sandbox.container.snapshots import SnapshotManager
from nova.sandbox.container.standby import STANDBY_MEMORY_MB, StandbyPool
from nova.sandbox.container.template import TEMPLATE_CAPS, FunctionTemplate
from nova.sandbox.instance_code import (
    create_instance_code_dir,
)
from nova.sandbox.linux.cgroups import CgroupLayout, CgroupLimits, InstanceCgroup
from nova.sandbox.linux.namespaced import (
    discard,
    prepare_off_loop,
    spawn_with_agent_socket,
)
from nova.sandbox.linux.seccomp import deny_filter, template_filter
from nova.sandbox.network.networks import InstanceNetwork, Networks
from nova.sandbox.network.probe import networks_for, with_network

logger = logging.getLogger(__name__)

HOST_ADDRESS_REFRESH_S = 10.0  # how often networked instances' firewalls re-read host addresses
TEMPLATE_BUILD_TIMEOUT_S = 30.0  # sandbox start plus the function's module-level init
TEMPLATE_FORK_TIMEOUT_S = 2.0  # a fork answers in milliseconds; past this the start falls back


class ContainerBackend:
    def __init__(
        self,
        max_message_bytes: int,
        options: ContainerOptions | None = None,
        *,
        standby: int = 0,
        standby_dir: Path | None = None,
        snapshots: SnapshotPolicy | None = None,
        counters: DaemonCounters | None = None,
        prestart: int = 0,
    ) -> None:
        """``standby`` blank instances are kept started under ``standby_dir`` so cold starts
        only pay for Init (container_standby.py); 0 turns that off. ``snapshots``: start
        instances by forking function templates (snapshots.py); None turns that off.
        ``prestart``: instances per pool of pre-started runtimes (prestart.py; needs
        snapshots, whose manager owns the pools); 0 turns them off."""
        self._max_message_bytes = max_message_bytes
        self._options = options or ContainerOptions()
        self._instances: dict[str, ContainerInstance] = {}
        self._roots = InstanceRoots(self._options.agent_python)  # the host root until use_images
        self._info = with_network(probe(self._options), self._options)
        self._host: HostPaths | None = None
        self._cgroups: CgroupLayout | None = None
        self._networks: Networks | None = None  # None: network: true is refused
        self._standby: StandbyPool | None = None
        self.function_snapshots: SnapshotManager | None = None
        self._host_watch: asyncio.Task[None] | None = None  # from the first networked start
        if self._info.available:
            self._host, self._cgroups = host_setup(self._options)
            self._networks = networks_for(self._options)
            if standby and standby_dir is not None:
                self._standby = StandbyPool(
                    standby,
                    standby_dir,
                    self._options.agent_python,
                    self._launch_standby,
                )
            if snapshots is not None and snapshots.mode is not SnapshotMode.OFF:
                self.function_snapshots = SnapshotManager(
                    self._build_template,
                    snapshots,
                    counters or DaemonCounters(),
                    self._options.cpu_boost_s,
                )
                if prestart:
                    self.function_snapshots.prestarted = PrestartPools(
                        prestart, self._launch_prestarted, self.function_snapshots.room_bytes
                    )

    @classmethod
    def probe(cls, options: ContainerOptions | None = None) -> BackendInfo:
        """Can this host run container instances? Runs a trivial sandbox once (cached)."""
        options = options or ContainerOptions()
        return with_network(probe(options), options)

    @property
    def info(self) -> BackendInfo:
        return self._info

    def use_images(self, images: RuntimeImages) -> None:
        """Run each runtime's instances on the image ``images`` names for it (nova.images)
        instead of the host root; the daemon wires this after choosing the backend."""
        self._roots = InstanceRoots(self._options.agent_python, images)

    def start_standby(self) -> None:
        """Start the standby instances now (call on a running loop) rather than on first use."""
        if self._standby is not None:
            self._standby.replenish()

    @property
    def host_image_id(self) -> str | None:
        """The id of the host root instances see (None while the backend is unavailable)."""
        return self._host.image_id if self._host is not None else None

    async def start(self, spec: InstanceSpec) -> SandboxInstance:
        """An instance forked from the function's template when one is ready, else a new
        sandbox (a standby claimed when one fits)."""
        if not self._info.available or self._host is None:
            raise SandboxError(f"the container backend is unavailable: {self._info.reason}")
        if spec.network and self._networks is None:
            raise SandboxError(
                f"network: true is not available for container instances here ({self._info.reason})"
            )
        if spec.network:
            self._watch_host_addresses()
        if self.function_snapshots is not None:
            forked = await self.function_snapshots.start(spec)
            if forked is not None:
                return forked
        layout, image_id = await self._roots.resolve(spec, self._host)
        limits = CgroupLimits.for_memory(spec.memory_mb, pids_max=self._options.pids_for(spec))
        key = prestart_key(spec, image_id)
        if self.function_snapshots is not None and key is not None:
            claimed = await self.function_snapshots.claim_prestarted(spec, key, limits)
            if claimed is not None:
                return cast(ContainerInstance, claimed)
        if self._standby is not None and self._standby_fits(spec, image_id):
            standby = await self._standby.claim(spec, limits, self._options.cpu_boost_s)
            if standby is not None:
                return cast(ContainerInstance, standby)
        return await self._launch(spec, layout, image_id, limit_cpu=True)

    def _watch_host_addresses(self) -> None:
        if self._networks is not None and self._host_watch is None:
            self._host_watch = asyncio.create_task(
                self._networks.watch_host(HOST_ADDRESS_REFRESH_S), name="host-address-watch"
            )

    def _standby_fits(self, spec: InstanceSpec, image_id: str) -> bool:
        """Would a fresh start give exactly what a standby instance has?"""
        assert self._host is not None  # start() checked
        tmp_mb = self._options.tmp_mb
        return (
            not spec.network
            and image_id == self._host.image_id
            and tmp_size_bytes(tmp_mb, spec.memory_mb) == tmp_size_bytes(tmp_mb, STANDBY_MEMORY_MB)
        )

    async def _launch_standby(self, spec: InstanceSpec) -> ContainerInstance:
        assert self._host is not None  # standby exists only for an available backend
        # No CPU quota while idle (an idle agent uses none); the claim starts the boost.
        return await self._launch(spec, self._host.layout, self._host.image_id, limit_cpu=False)

    async def _launch_prestarted(self, spec: InstanceSpec) -> ContainerInstance:
        assert self._host is not None  # the pools exist only for an available backend
        layout, image_id = await self._roots.resolve(spec, self._host)
        # No CPU quota while idle (an idle runtime uses none); the claim starts the boost.
        return await self._launch(spec, layout, image_id, limit_cpu=False)

    async def _build_template(self, spec: InstanceSpec) -> FunctionTemplate:
        """Start a function template for ``spec``'s function and let it import the code."""
        assert self._host is not None  # the manager exists only for an available backend
        assert spec.init is not None  # SnapshotManager.start checked
        template_id = f"template-{uuid.uuid4().hex[:12]}"
        template_spec = replace(
            spec, instance_id=template_id, work_dir=spec.work_dir.parent / template_id
        )
        layout, image_id = await self._roots.resolve(template_spec, self._host)
        instance = await self._launch(
            template_spec, layout, image_id, limit_cpu=True, template=True
        )
        limits = CgroupLimits.for_memory(spec.memory_mb, pids_max=self._options.pids_for(spec))
        template = FunctionTemplate(instance, self._cgroups, limits, TEMPLATE_FORK_TIMEOUT_S)
        init = {**spec.init, "code_dir": bw.CODE_DIR, "tmp_dir": bw.TMP_DIR}
        tmp_bytes = tmp_size_bytes(self._options.tmp_mb, spec.memory_mb)
        try:
            await asyncio.wait_for(
                template.build(init, deny_filter(), tmp_bytes), TEMPLATE_BUILD_TIMEOUT_S
            )
        except TimeoutError as exc:
            await template.kill()
            raise SandboxError(
                f"the template of {spec.function_name} did not import it within "
                f"{TEMPLATE_BUILD_TIMEOUT_S:.0f} s"
            ) from exc
        except BaseException:
            await template.kill()
            raise
        return template

    async def _launch(
        self,
        spec: InstanceSpec,
        layout: bw.RootLayout,
        image_id: str,
        *,
        limit_cpu: bool,
        template: bool = False,
    ) -> ContainerInstance:
        prepared = await prepare_off_loop(
            functools.partial(self._prepare, spec, layout, template=template),
            functools.partial(_release_prepared, spec),
        )
        try:
            # The wrapper moves the agent socket from stdin to fd 3.
            process, host_end = spawn_with_agent_socket(
                prepared.argv, prepared.log_fd, prepared.files.inherited
            )
        except OSError as exc:
            if prepared.network is not None:
                prepared.network.close()
            await asyncio.to_thread(discard, spec, prepared.cgroup)
            raise SandboxError(
                f"could not start a container for {spec.function_name}: {exc}"
            ) from exc
        finally:
            prepared.close()
        instance = ContainerInstance(
            spec, process, host_end, prepared.cgroup, self._forget, image_id
        )
        instance.network = prepared.network
        instance.code_ms = prepared.code_ms
        self._instances[spec.instance_id] = instance
        if prepared.network is not None:  # bwrap waits for it before it runs the agent
            try:
                await prepared.network.attach(
                    prepared.cgroup.procs_files if prepared.cgroup else ()
                )
            except BaseException:
                await instance.kill()
                raise
        if prepared.cgroup is not None and limit_cpu:
            instance.limit_cpu_after(self._options.cpu_boost_s, prepared.cpu_quota_us)
        return instance

    def _prepare(self, spec: InstanceSpec, layout: bw.RootLayout, *, template: bool) -> _Prepared:
        """Blocking set-up, in a worker thread: work dir, cgroups, fds and the argv.
        ``template``: a function template's (template.py), which forks the instances."""
        assert self._host is not None  # start() checked
        options = self._options
        spec.work_dir.mkdir(parents=True, exist_ok=True)
        cgroup, files, network = None, None, None
        limits = CgroupLimits.for_memory(spec.memory_mb, pids_max=options.pids_for(spec))
        if self._cgroups is not None:
            cgroup = self._cgroups.create(spec.instance_id, limits)
        try:
            tmp_bytes = tmp_size_bytes(options.tmp_mb, spec.memory_mb)
            if spec.network and self._networks is not None:
                network = self._networks.open(spec.instance_id, spec.work_dir / "network.log")
            sync_fds = network.sync_fds if network is not None else None
            placing = time.perf_counter()
            code_dir = create_instance_code_dir(spec.instance_id, spec.code_dir)
            code_ms = (time.perf_counter() - placing) * 1000
            seccomp = template_filter() if template else deny_filter()
            files = open_instance_files(spec, code_dir, self._host, seccomp, sync_fds)
            module = "nova.agent.template" if template else "nova.agent"
            command = agent_argv(options.agent_python, 3, self._max_message_bytes, module)
            argv = bw.bwrap_argv(
                self._host.bwrap,
                layout,
                files.mounts,
                tmp_bytes=tmp_bytes,
                env=agent_env(bw.AGENT_ROOT, bw.TMP_DIR),
                command=command,
                keep_caps=TEMPLATE_CAPS if template else (),
            )
            wrapper = wrapper_argv(
                self._host,
                open_files=options.open_files,
                fsize_bytes=tmp_bytes,
                procs_files=[str(p) for p in cgroup.procs_files] if cgroup else [],
                sandbox=argv,
            )
            log_fd = os.open(
                spec.work_dir / "agent.log",
                os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                0o600,
            )
        except BaseException:
            if files is not None:
                files.close()
            if network is not None:
                network.close()
            discard(spec, cgroup)
            raise
        return _Prepared(wrapper, files, log_fd, cgroup, limits.cpu_quota_us, code_ms, network)

    def _forget(self, instance_id: str) -> None:
        self._instances.pop(instance_id, None)

    async def close(self) -> None:
        if self._host_watch is not None:
            self._host_watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._host_watch
        if self._standby is not None:
            await self._standby.close()
        if self.function_snapshots is not None:
            await self.function_snapshots.close()
        await asyncio.gather(*(i.kill() for i in list(self._instances.values())))
        if self._cgroups is not None:
            await asyncio.to_thread(self._cgroups.release)


@dataclass(slots=True)
class _Prepared:
    argv: list[str]
    files: InstanceFiles
    log_fd: int
    cgroup: InstanceCgroup | None
    cpu_quota_us: int
    code_ms: float
    network: InstanceNetwork | None = None

    def close(self) -> None:
        self.files.close()
        os.close(self.log_fd)
        if self.network is not None:
            self.network.close_child_ends()


def tmp_size_bytes(tmp_mb: int, memory_mb: int) -> int:
    """The /tmp size. tmpfs pages are charged to the instance's memory cgroup, so a /tmp as
    large as memory_mb would end in an OOM kill instead of ENOSPC: cap it at half."""
    return max(1, min(tmp_mb, memory_mb // 2)) * 1024 * 1024


def _release_prepared(spec: InstanceSpec, prepared: _Prepared) -> None:
    prepared.close()
    if prepared.network is not None:
        prepared.network.close()
    # Off the loop: removing groups may wait for the kernel.
    threading.Thread(target=discard, args=(spec, prepared.cgroup), daemon=True).start()


__all__ = ["ContainerBackend", "ContainerInstance", "ContainerOptions", "tmp_size_bytes"]
