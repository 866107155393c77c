"""Choosing the sandbox backend: the strongest this host supports, or the one asked for."""

from __future__ import annotations

import logging

from nova.config import Settings
from nova.core.errors import NovaError
from nova.sandbox.base import BackendInfo, SandboxBackend
from nova.sandbox.process import ProcessBackend

logger = logging.getLogger(__name__)


class NoUsableBackend(NovaError):
    code = "Sandbox.NoBackend"
    status = 503


def _process_info(allowed: bool) -> BackendInfo:
    reason = (
        "allowed by sandbox.allow_process_backend (--dev)"
        if allowed
        else (
            "refused: it isolates nothing; start the daemon with --dev to allow it for development"
        )
    )
    return BackendInfo("process", allowed, reason, "none: a child process with rlimits", True)


def choose_backend(settings: Settings) -> tuple[SandboxBackend, list[BackendInfo]]:
    """Return the backend to use and what every backend's status is on this host."""
    wanted = settings.sandbox.backend
    allow_process = settings.sandbox.allow_process_backend or wanted == "process"
    candidates: list[tuple[BackendInfo, SandboxBackend | None]] = []
    candidates.append(
        (
            _process_info(allow_process),
            ProcessBackend(settings.executor.max_message_bytes) if allow_process else None,
        )
    )
    infos = [info for info, _ in candidates]
    for info, backend in candidates:
        if backend is not None and info.available and (wanted in ("auto", info.name)):
            if info.name == "process":
                logger.warning(
                    "using the process backend: functions run WITHOUT isolation (development only)"
                )
            else:
                logger.info("using the %s backend: %s", info.name, info.isolation)
            return backend, infos
    reasons = "; ".join(f"{info.name}: {info.reason}" for info in infos)
    raise NoUsableBackend(f"no usable sandbox backend for backend={wanted!r} ({reasons})")
