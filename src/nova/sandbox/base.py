"""The SandboxBackend port.

A backend starts one *instance*: an isolated environment running the Nova agent, reachable over a
connected stream socket that speaks :mod:`nova.agent.protocol`. The pool never knows which
backend it talks to; the daemon (composition root) picks one.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class InstanceSpec:
    """What a backend needs to start one instance."""

    instance_id: str
    function_name: str
    runtime: str
    interpreter: str  # host path of the language interpreter; the backend makes it visible
    code_dir: Path  # host directory holding the function's files, read-only to the function
    work_dir: Path  # private, writable host directory for this instance (removed on kill)
    memory_mb: int
    timeout_s: float
    network: bool
    # Invocations one instance runs at once (a worker each): scales the process limit.
    concurrency: int = 1
    # Names what Init will make of the instance (function version, handler, env, limits):
    # backends that snapshot initialised instances key their snapshots by it.
    init_key: str | None = None
    # The Init frame the launcher will send (code_dir and tmp_dir left empty: the backend's
    # paths), for backends that start instances from a function template; None when the
    # instance's env holds resolved secrets, which no template may keep (holds_secrets).
    init: Mapping[str, Any] | None = None
    holds_secrets: bool = False


@dataclass(frozen=True, slots=True)
class BackendInfo:
    name: str
    available: bool
    reason: str  # why it is (un)available; shown by GET /runtimes and /health
    isolation: str  # one line: what it isolates
    supports_reload: bool  # can an instance's code be replaced under it (replace_code)?
    supports_network: bool = False  # can instances have `network: true` on this host?


class SandboxInstance(Protocol):
    """A started instance. ``sock`` is the host end of the agent connection."""

    # Milliseconds its start spent placing the function's code (None: it placed none, as an
    # instance forked from a template that imported it): reported apart from the sandbox start.
    code_ms: float | None

    @property
    def instance_id(self) -> str: ...

    @property
    def sock(self) -> socket.socket: ...

    @property
    def pid(self) -> int | None: ...

    @property
    def code_dir(self) -> str:
        """The function's code directory as the agent sees it (goes into Init)."""
        ...

    @property
    def tmp_dir(self) -> str:
        """A writable scratch directory as the agent sees it (goes into Init)."""
        ...

    @property
    def image_id(self) -> str:
        """The root filesystem the instance runs on (e.g. "host:<hash>"), for instance records."""
        ...

    def alive(self) -> bool: ...

    def oom_kills(self) -> int:
        """How many processes of this instance the kernel OOM-killed so far (0 if unknown)."""
        ...

    async def replace_code(self, source: Path) -> None:
        """Make the instance's code directory hold exactly ``source``'s files (a host
        directory), in place: the hot reload of a code-only update. Call it only while the
        agent's workers are drained (nothing may import a half-written tree); OSError if the
        files cannot be written. Backends whose ``supports_reload`` is False raise
        SandboxError."""
        ...

    async def kill(self) -> None:
        """Stop the instance at once (SIGKILL semantics) and release its resources. Idempotent."""
        ...


@runtime_checkable
class SnapshottingInstance(Protocol):
    """An instance whose backend can save it once initialised and start later instances from
    that save (the microvm backend's VM snapshots)."""

    @property
    def initialised(self) -> bool:
        """True when the instance was restored from a snapshot taken after Init: the launcher
        must not send Init again."""
        ...

    async def save_snapshot(self) -> None:
        """Called once Init succeeded: save the instance for later starts (or do nothing when
        one exists). Never raises: a failed save only costs later starts a boot."""
        ...

    @property
    def start_notice(self) -> str | None:
        """A line for the logs of the instance's first invocation about what its snapshot
        changed of the function's state (None: nothing to say)."""
        ...


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """One function snapshot as GET /snapshots lists it."""

    id: str
    backend: str
    function: str
    version: str
    memory_mb: int
    # building | ready | failed | retired (dropped, its instances still run) | dropped; a pool
    # of pre-started runtimes: building | ready | empty (its last start failed, or no room)
    state: str
    size_bytes: int  # memory it holds (a template's cgroup)
    hits: int  # starts it served
    misses: int  # starts that found it not ready, and started the slow way
    fallbacks: int  # starts it failed, which then started the slow way
    forked_ahead: int  # instances forked and waiting for a start (0 or 1)
    created_at: float  # unix time
    last_used_at: float | None
    detail: str = ""  # why it failed or was dropped
    kind: str = "template"  # or "prestarted": a pool of runtimes up with no function loaded


class SnapshotStore(Protocol):
    """A backend's function snapshots (the snapshot manager of the container backend)."""

    def list(self) -> list[SnapshotInfo]: ...

    async def create(self, spec: InstanceSpec) -> SnapshotInfo:
        """Build the snapshot ``spec`` would start from, now (SandboxError if it cannot)."""
        ...

    async def delete(self, snapshot_id: str) -> bool:
        """Drop one (False: no such snapshot)."""
        ...

    async def retire(self, function_name: str, version: str | None, reason: str) -> int:
        """Drop the snapshots of one version of a function (None: of every version); returns
        how many."""
        ...


@runtime_checkable
class SnapshottingBackend(Protocol):
    @property
    def function_snapshots(self) -> SnapshotStore | None:
        """Its function snapshots (None: switched off by the config)."""
        ...


class SandboxBackend(Protocol):
    @property
    def info(self) -> BackendInfo: ...

    async def start(self, spec: InstanceSpec) -> SandboxInstance:
        """Start the instance; return once its agent process exists (not yet initialised)."""
        ...

    async def close(self) -> None:
        """Kill anything still running (daemon shutdown)."""
        ...
