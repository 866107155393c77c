"""One running instance as the pool sees it: sandbox + agent connection + slot accounting."""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path
from typing import Any

from nova.agent.protocol import MsgType
from nova.core.errors import AgentProtocolError
from nova.core.models import StartKind, StartPhases
from nova.pool.connection import AgentConnection
from nova.pool.deployment import Deployment
from nova.sandbox.base import SandboxInstance


class InstanceState(StrEnum):
    READY = "ready"  # may take invocations (if it has a free slot)
    RELOADING = "reloading"  # receiving new code; takes nothing until done
    RETIRED = "retired"  # config changed or unhealthy: finish in-flight work, then stop
    DEAD = "dead"


class PooledInstance:
    def __init__(
        self, sandbox: SandboxInstance, connection: AgentConnection, deployment: Deployment
    ) -> None:
        self.sandbox = sandbox
        self.connection = connection
        self.code_hash = deployment.code_hash
        self.fingerprint = deployment.config.runtime_fingerprint()
        self.concurrency = deployment.config.instance_concurrency
        self.state = InstanceState.READY
        self.inflight = 0
        self.invocations = 0
        self.started_at = time.monotonic()
        self.ready_at = self.started_at  # the pool sets it once the instance has initialised
        self.last_used = self.started_at
        self.oom_kills_seen = 0
        # How it became ready and what that cost: the launcher (or a snapshot restore) sets
        # them; a pool pre-warming it marks it PREWARMED.
        self.start_kind = StartKind.COLD
        self.start_phases = StartPhases()
        # Prepended to the stderr of its first invocation (set for a snapshot start that
        # changed the function's state, e.g. closed its init code's sockets).
        self.start_notice: str | None = None
        # Wall-clock time its launch began (before its secrets were read), and the secret
        # values its environment holds: its output and errors are scrubbed of them.
        self.launched_at = time.time()
        self.secret_values: tuple[str, ...] = ()

    @property
    def instance_id(self) -> str:
        return self.sandbox.instance_id

    @property
    def has_free_slot(self) -> bool:
        return self.state is InstanceState.READY and self.inflight < self.concurrency

    async def ping(self, timeout_s: float) -> None:
        reply = await self.connection.request({"type": MsgType.PING}, timeout_s)
        _require_ok(reply, "ping")

    async def reload(self, code_dir: Path, code_hash: str, timeout_s: float) -> None:
        """Hot reload: the agent stops its workers (Drain), the sandbox takes ``code_dir``'s
        files in place of its code, and the agent starts workers on them (Reload). The pool
        reloads idle instances only, so every invocation it sent has finished on the old code
        (Drain would wait for one still running, up to its timeout)."""
        _require_ok(await self.connection.request({"type": MsgType.DRAIN}, timeout_s), "drain")
        await self.sandbox.replace_code(code_dir)
        message = {"type": MsgType.RELOAD, "code_hash": code_hash}
        _require_ok(await self.connection.request(message, timeout_s), "reload")
        self.code_hash = code_hash

    async def destroy(self) -> None:
        self.state = InstanceState.DEAD
        await self.connection.close()
        await self.sandbox.kill()


def _require_ok(reply: dict[str, Any], what: str) -> None:
    if not reply.get("ok"):
        error = reply.get("error") or {}
        raise AgentProtocolError(
            f"agent refused {what}: {error.get('type')}: {error.get('message')}"
        )
