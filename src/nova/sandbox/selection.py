"""Building the daemon's backends and choosing its default.

`auto` prefers the container backend: it isolates with namespaces, cgroups and a seccomp
filter at ~10 ms of start-up cost. gVisor isolates more (the function's syscalls go to a
user-space kernel) but costs ~6x the cold start and ~5x the warm latency on this kind of host,
so `auto` chooses it only where containers cannot run; functions (or the daemon) can still ask
for it. The process backend isolates nothing and exists only in development mode.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import replace

from nova.config import Settings
from nova.core.counters import DaemonCounters
from nova.core.errors import NovaError
from nova.sandbox.base import BackendInfo, SandboxBackend
from nova.sandbox.container.backend import ContainerBackend
from nova.sandbox.container.setup import ContainerOptions
from nova.sandbox.container.snapshots import SnapshotMode, SnapshotPolicy
from nova.sandbox.gvisor.backend import GvisorBackend
from nova.sandbox.microvm.backend import MicrovmBackend
from nova.sandbox.microvm.layout import MicrovmOptions
from nova.sandbox.network.probe import networks_for
from nova.sandbox.process.backend import ProcessBackend
from nova.sandbox.registry import BackendRegistry

logger = logging.getLogger(__name__)


class NoUsableBackend(NovaError):
    code = "Sandbox.NoBackend"
    status = 503


def process_backend_info(allowed: bool) -> BackendInfo:
    info = ProcessBackend(0).info
    if allowed:
        return info
    reason = "refused: it isolates nothing; allow it for development with `nova daemon --dev`"
    return BackendInfo(info.name, False, reason, info.isolation, info.supports_reload)


def _unless_disabled(info: BackendInfo, disabled: Collection[str]) -> BackendInfo:
    if not info.available or info.name not in disabled:
        return info
    reason = f"disabled by this daemon's config (sandbox.disabled_backends: {info.name})"
    return replace(info, available=False, reason=reason)


def build_backends(settings: Settings, counters: DaemonCounters | None = None) -> BackendRegistry:
    """Every backend this host can run, and the daemon's default among them."""
    max_message_bytes = settings.executor.max_message_bytes
    disabled = settings.sandbox.disabled_backends
    container = _unless_disabled(ContainerBackend.probe(), disabled)
    gvisor = _unless_disabled(GvisorBackend.probe(), disabled)
    process = _unless_disabled(
        process_backend_info(settings.sandbox.allow_process_backend), disabled
    )
    microvm = _unless_disabled(MicrovmBackend.probe(), disabled)
    backends: dict[str, SandboxBackend] = {}
    if container.available:
        backends["container"] = ContainerBackend(
            max_message_bytes,
            standby=settings.sandbox.standby_instances,
            standby_dir=settings.daemon.data_dir.resolve() / "instances",
            snapshots=SnapshotPolicy(
                mode=SnapshotMode(settings.sandbox.snapshots),
                ttl_s=settings.sandbox.snapshot_ttl_s,
                memory_budget_bytes=settings.sandbox.snapshot_memory_mb * 1024 * 1024,
            ),
            counters=counters,
        )
    if gvisor.available:
        backends["gvisor"] = GvisorBackend(max_message_bytes)
    if microvm.available:
        backends["microvm"] = MicrovmBackend(
            MicrovmOptions(
                cache_dir=settings.daemon.data_dir.resolve() / "microvm",
                overhead_mb=settings.sandbox.microvm_overhead_mb,
                snapshots_max_bytes=settings.sandbox.microvm_snapshots_max_mb * 1024 * 1024,
                max_message_bytes=max_message_bytes,
            ),
            counters=counters,
            # network: true runs QEMU behind what a networked container gets (same probe)
            networks=networks_for(ContainerOptions()) if container.available else None,
        )
        microvm = backends["microvm"].info  # with what it can do for network: true
    infos = [container, gvisor, microvm, process]
    if process.available:
        backends["process"] = ProcessBackend(max_message_bytes)
    default = _default(settings.sandbox.backend, backends, infos)
    container_backend = backends.get("container")
    if default == "container" and isinstance(container_backend, ContainerBackend):
        container_backend.start_standby()  # elsewhere they start on first container use
    for info in infos:
        if not info.available:
            logger.info("backend %s unavailable: %s", info.name, info.reason)
    if microvm.available:
        logger.info("backend microvm: %s", microvm.reason)  # says KVM or TCG, and why
    if default == "process":
        logger.warning(
            "default backend: process — functions run WITHOUT isolation (development only)"
        )
    else:
        logger.info("default backend: %s (%s)", default, backends[default].info.isolation)
    return BackendRegistry(default, backends, infos)


def _default(wanted: str, backends: dict[str, SandboxBackend], infos: list[BackendInfo]) -> str:
    order = ("container", "gvisor", "process") if wanted == "auto" else (wanted,)
    for name in order:
        if name in backends:
            if wanted == "auto" and name == "container" and "gvisor" in backends:
                logger.info(
                    "gvisor is available too (stronger syscall isolation, slower starts): use backend: gvisor"
                )
            return name
    reasons = "; ".join(f"{info.name}: {info.reason}" for info in infos)
    raise NoUsableBackend(f"no usable sandbox backend for backend={wanted!r} ({reasons})")
