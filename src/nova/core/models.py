"""Frozen value types that cross layer boundaries (store <-> service <-> pool <-> API)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

LATEST_VERSION = "$LATEST"
MAX_TIMEOUT_S = 900.0  # the longest timeout_s a function may have (clients wait this long)


class StartKind(StrEnum):
    """How the instance that ran an invocation came to be ready."""

    WARM = "warm"  # it had served an invocation before
    COLD = "cold"  # started for this invocation, which waited for it
    PREWARMED = "prewarmed"  # started ahead (min_replicas); this is its first invocation
    SNAPSHOT = "snapshot"  # restored from a function snapshot for this invocation
    PRESTARTED = "prestarted"  # a pre-started runtime (sandbox and runtime up) loaded the function


@dataclass(frozen=True, slots=True)
class StartPhases:
    """Where a non-warm start's time went (milliseconds; None: not measured on this path).

    ``sandbox_ms`` starting or restoring the sandbox, ``code_ms`` placing the function's code
    in it, ``runtime_ms`` starting the language runtime, ``init_ms`` importing the handler
    module (its module-level code). The invocation's own run is its ``duration_ms``.
    """

    sandbox_ms: float | None = None
    code_ms: float | None = None
    runtime_ms: float | None = None
    init_ms: float | None = None


class ExecutionMode(StrEnum):
    PERSISTENT = "persistent"  # one long-lived worker fed JSON lines, restarted on crash
    PROCESS = "process"  # a fresh process per invocation


@dataclass(frozen=True, slots=True)
class CodeFile:
    content: bytes
    executable: bool = False


@dataclass(frozen=True, slots=True)
class CodeBundle:
    """The files of one function version: relative POSIX path -> file."""

    files: Mapping[str, CodeFile]

    @property
    def sha256(self) -> str:
        """Content hash over sorted (path, mode, content); equal bundles hash equal."""
        digest = hashlib.sha256()
        for path in sorted(self.files):
            item = self.files[path]
            digest.update(path.encode())
            digest.update(b"\x00x\x00" if item.executable else b"\x00-\x00")
            digest.update(len(item.content).to_bytes(8, "big"))
            digest.update(item.content)
        return digest.hexdigest()

    @property
    def size(self) -> int:
        return sum(len(item.content) for item in self.files.values())


@dataclass(frozen=True, slots=True)
class FunctionConfig:
    """Everything about a function except its code."""

    name: str
    runtime: str
    handler: str
    memory_mb: int = 128
    timeout_s: float = 30.0
    env: Mapping[str, str] = field(default_factory=dict)
    mode: ExecutionMode = ExecutionMode.PERSISTENT
    min_replicas: int = 0
    max_replicas: int = 10
    instance_concurrency: int = 1
    backend: str | None = None
    network: bool = False
    description: str = ""
    # Asynchronous invocations (nova.events): attempts and backoff by error kind (kinds left out
    # take the defaults of nova.events.policy), the age after which an event is not run any
    # more, and where outcomes go ("function:NAME[:QUALIFIER]", or "" for nowhere).
    async_retry: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    async_max_age_s: float = 21600.0
    on_success: str = ""
    on_failure: str = ""

    def document(self) -> dict[str, Any]:
        """Every field but the name as JSON values: how the store keeps a config and the API
        shows one, so a new field needs no change in either."""
        values = {item.name: getattr(self, item.name) for item in fields(self)}
        del values["name"]
        values["env"] = dict(self.env)
        values["mode"] = self.mode.value
        values["async_retry"] = {kind: dict(rule) for kind, rule in self.async_retry.items()}
        return values

    @classmethod
    def from_document(cls, name: str, document: Mapping[str, Any]) -> FunctionConfig:
        """The inverse of :meth:`document`; a field the document lacks (it was stored before
        the field existed) takes its default, and one this code does not know is ignored."""
        known = {item.name for item in fields(cls)} - {"name"}
        config = cls(name=name, **{key: document[key] for key in known & set(document)})
        return replace(
            config,
            env=dict(config.env),
            mode=ExecutionMode(config.mode),
            timeout_s=float(config.timeout_s),
            async_retry={kind: dict(rule) for kind, rule in config.async_retry.items()},
            async_max_age_s=float(config.async_max_age_s),
        )

    def runtime_fingerprint(self) -> tuple[object, ...]:
        """The fields whose change needs a new instance (code alone can be hot-reloaded)."""
        return (
            self.runtime,
            self.handler,
            self.memory_mb,
            self.timeout_s,
            tuple(sorted(self.env.items())),
            self.mode,
            self.instance_concurrency,
            self.backend,
            self.network,
        )


@dataclass(frozen=True, slots=True)
class FunctionRecord:
    """A stored function: its config plus bookkeeping; never carries the code itself."""

    id: str
    config: FunctionConfig
    code_hash: str
    code_size: int
    revision: int
    created_at: datetime
    updated_at: datetime

    @property
    def name(self) -> str:
        return self.config.name


@dataclass(frozen=True, slots=True)
class InvocationError:
    """A failure of user code (or of its sandbox) reported as data, never raised."""

    type: str
    message: str
    stack: list[str] = field(default_factory=list)


# Not frozen, unlike the other value types: one is built per invocation, and a frozen
# dataclass's __init__ (object.__setattr__ per field) cost the warm path measurably
# (bench.ab: p50 0.34-0.38 -> 0.32-0.33 ms with InvocationResult). Nothing mutates them.
@dataclass(slots=True)
class InvocationLog:
    """One answered invocation. ``function_id`` ties it to the function that ran it: a function
    created again under a deleted one's name starts with no history. ``duration_ms`` is the
    handler's own time (as the invoke response reports it); ``total_ms`` is the daemon's, from
    the request's arrival to the answer, with any wait for a slot or a cold start."""

    id: str
    function_id: str | None  # None only on records older than this field, of deleted functions
    function_name: str
    runtime: str
    version: str  # the version that ran: "$LATEST" or a published number
    qualifier: str  # what the caller asked for: an alias, a number, or "" for $LATEST
    duration_ms: float
    total_ms: float
    cold_start: bool
    success: bool
    error_type: str | None
    error_message: str | None
    input_size: int
    output_size: int
    stdout: str
    stderr: str
    created_at: datetime
    start: str = "warm"  # a StartKind value
    # A non-warm start's phases (StartPhases, flattened for the store); None when warm.
    sandbox_ms: float | None = None
    code_ms: float | None = None
    runtime_ms: float | None = None
    init_ms: float | None = None


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next: str | None
