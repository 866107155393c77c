"""The snapshot manager's (snapshots.py) policy and records: which starts a template can
serve, a template's id and its entry (state, counts, instances), and what an instance forked
from a template whose init code opened sockets logs."""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass, field
from enum import StrEnum

from nova.sandbox.base import InstanceSpec
from nova.sandbox.container.forked import ForkedInstance
from nova.sandbox.container.template import FunctionTemplate


class SnapshotMode(StrEnum):
    EAGER = "eager"  # built when the function is created or updated
    FIRST_INVOKE = "first_invoke"  # built by the first cold start, which starts the slow way
    OFF = "off"


@dataclass(frozen=True, slots=True)
class SnapshotPolicy:
    mode: SnapshotMode = SnapshotMode.FIRST_INVOKE
    ttl_s: float = 600.0  # a template no start used for this long is dropped
    memory_budget_bytes: int = 512 * 1024 * 1024  # all templates together; LRU past it
    health_interval_s: float = 10.0
    # Each ready template keeps one instance forked ahead, so a start takes it (and the next
    # is forked off the start path): a fork makes network and pid namespaces, which costs
    # more than the whole target here (docs/performance.md).
    fork_ahead: bool = True
    # first_invoke: the build waits this long after the miss, so it does not compete for the
    # CPUs with the slow start it follows (and that start's first invocation).
    build_delay_s: float = 2.0


def snapshot_id(spec: InstanceSpec) -> str:
    digest = hashlib.sha256(f"{spec.init_key}:{spec.memory_mb}".encode()).hexdigest()
    return f"snap-{digest[:16]}"


def socket_notice(sockets: int) -> str | None:
    """What the first invocation of an instance forked from a template whose init code opened
    ``sockets`` sockets logs (the fork closed them: one connection cannot serve many)."""
    if not sockets:
        return None
    return (
        f"[nova] this instance started from a snapshot: the {sockets} socket(s) the module-level "
        "init code opened were closed in it (a socket cannot be shared between instances); "
        "open connections in the handler, or lazily on first use\n"
    )


def can_snapshot(spec: InstanceSpec) -> bool:
    """Only persistent Python functions fork (other runtimes cannot), and only without
    network: true (whose instances get their network from the host at start)."""
    init = spec.init or {}
    return (
        spec.init_key is not None
        and init.get("runtime") == "python"
        and init.get("mode") == "persistent"
        and not spec.network
    )


@dataclass(slots=True)
class Entry:
    """One template as the manager keeps it."""

    id: str
    spec: InstanceSpec  # the start it was built for: what a rebuild builds again
    state: str = "building"  # building | ready | failed | retired | dropped
    template: FunctionTemplate | None = None
    task: asyncio.Task[None] | None = None
    hits: int = 0
    misses: int = 0
    fallbacks: int = 0
    created_at: float = field(default_factory=time.time)
    last_used_at: float | None = None
    last_used: float = field(default_factory=time.monotonic)
    detail: str = ""
    children: set[ForkedInstance] = field(default_factory=set)
    spare: ForkedInstance | None = None  # forked ahead (SnapshotPolicy.fork_ahead)
    forking_spare: bool = False

    @property
    def version(self) -> str:
        return str((self.spec.init or {}).get("function_version", ""))
