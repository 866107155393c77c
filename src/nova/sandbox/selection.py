"""Choosing the sandbox backend: the strongest this host supports, or the one asked for.

Order of strength: container (namespaces + cgroups + seccomp), then process (no isolation).
The process backend is only ever chosen when development mode allows it, and then loudly.
"""

from __future__ import annotations

import logging

from nova.config import Settings
from nova.core.errors import NovaError
from nova.sandbox.base import BackendInfo, SandboxBackend
from nova.sandbox.container import ContainerBackend
from nova.sandbox.process import ProcessBackend

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


def choose_backend(settings: Settings) -> tuple[SandboxBackend, list[BackendInfo]]:
    """The backend to use, and every backend's status on this host (for /runtimes, /health)."""
    wanted = settings.sandbox.backend
    max_message_bytes = settings.executor.max_message_bytes
    container_info = ContainerBackend.probe()
    process_info = process_backend_info(settings.sandbox.allow_process_backend)
    infos = [container_info, process_info]
    if wanted in ("auto", "container") and container_info.available:
        logger.info("sandbox backend: container (%s)", container_info.isolation)
        return ContainerBackend(max_message_bytes), infos
    if wanted in ("auto", "process") and process_info.available:
        if wanted == "auto":
            logger.warning("the container backend is unavailable: %s", container_info.reason)
        logger.warning(
            "sandbox backend: process — functions run WITHOUT isolation (development only)"
        )
        return ProcessBackend(max_message_bytes), infos
    reasons = "; ".join(f"{info.name}: {info.reason}" for info in infos)
    raise NoUsableBackend(f"no usable sandbox backend for backend={wanted!r} ({reasons})")
