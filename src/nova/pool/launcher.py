"""Cold start: sandbox -> agent connection -> Init handshake, under one deadline."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

from nova.agent.protocol import PROTOCOL_VERSION, init_message
from nova.core.errors import SandboxError, SnapshotUnavailable
from nova.core.models import StartKind, StartPhases
from nova.core.secrets import scrub, secret_refs
from nova.pool.connection import AgentConnection
from nova.pool.deployment import Deployment
from nova.pool.instance import PooledInstance
from nova.sandbox.base import InstanceSpec, SnapshotInfo, SnapshottingInstance
from nova.sandbox.registry import BackendRegistry

logger = logging.getLogger(__name__)


def init_key(deployment: Deployment) -> str:
    """A digest of everything Init makes of an instance: equal keys, equal initialised state.

    The Init frame without its paths (the sandbox's, the same for every instance) and the hash
    of the code it loads: `$LATEST` names new code after every update, so the version alone
    would let a backend restore a snapshot of the old code.
    """
    init = init_message(deployment, "", "", deployment.config.env)
    init["code_hash"] = deployment.code_hash
    return hashlib.sha256(json.dumps(init, sort_keys=True, default=str).encode()).hexdigest()


class EnvResolver(Protocol):
    async def resolve(self, function: str, env: Mapping[str, str]) -> dict[str, str]:
        """``env`` as the instance gets it: ``$SECRET:name`` values replaced by the secrets'
        values (a NovaError naming the secret when one cannot be had)."""
        ...


class Launcher(Protocol):
    async def launch(
        self, deployment: Deployment, on_lost: Callable[[PooledInstance], None]
    ) -> PooledInstance: ...


class SandboxLauncher:
    def __init__(
        self,
        backends: BackendRegistry,
        instances_dir: Path,
        start_timeout_s: float,
        max_message_bytes: int,
        env: EnvResolver | None = None,
    ) -> None:
        self._backends = backends
        self._env = env
        self._instances_dir = instances_dir
        self._start_timeout_s = start_timeout_s
        self._max_message_bytes = max_message_bytes

    async def launch(
        self, deployment: Deployment, on_lost: Callable[[PooledInstance], None]
    ) -> PooledInstance:
        config = deployment.config
        launched_at = time.time()  # before the secrets are read: see FunctionPool.renew
        env, secret_values = await self._environment(deployment)
        spec = self._spec(deployment, env, secret_values)
        instance_id = spec.instance_id
        began = time.perf_counter()
        sandbox = await self._backends.get(config.backend).start(spec)
        sandbox_ready = time.perf_counter()
        connection = AgentConnection(self._max_message_bytes)
        instance = PooledInstance(sandbox, connection, deployment)
        instance.launched_at = launched_at
        instance.secret_values = secret_values
        # A snapshot would hold the resolved secrets in its saved memory: never take one then.
        snapshotting = (
            sandbox if isinstance(sandbox, SnapshottingInstance) and not secret_values else None
        )
        try:
            await connection.open(sandbox.sock, lambda _reason: on_lost(instance))
            if snapshotting is not None and snapshotting.initialised:
                reply = {"ok": True, "protocol": PROTOCOL_VERSION}  # Init ran before the save
                instance.start_kind = StartKind.SNAPSHOT
                instance.start_notice = snapshotting.start_notice
                answered = time.perf_counter()
            else:
                init = init_message(deployment, sandbox.code_dir, sandbox.tmp_dir, env)
                reply = await connection.request(init, self._start_timeout_s)
                answered = time.perf_counter()  # saving a snapshot is no part of this start
                if snapshotting is not None and reply.get("ok"):
                    await snapshotting.save_snapshot()
                if reply.get("prestarted"):  # the agent loaded it into a pre-started runtime
                    instance.start_kind = StartKind.PRESTARTED
        except (TimeoutError, SandboxError) as exc:
            await instance.destroy()
            reason = scrub(str(exc) or "timed out", secret_values)
            raise SandboxError(f"instance of {config.name} did not become ready: {reason}") from exc
        except asyncio.CancelledError:
            await instance.destroy()
            raise
        if not reply.get("ok") or reply.get("protocol") != PROTOCOL_VERSION:
            await instance.destroy()
            refusal = scrub(str(reply.get("error") or reply), secret_values)
            raise SandboxError(f"agent of {config.name} refused Init: {refusal}")
        instance.start_phases = start_phases(began, sandbox_ready, answered, reply, sandbox.code_ms)
        logger.debug("started instance %s (pid %s)", instance_id, sandbox.pid)
        return instance

    async def snapshot(self, deployment: Deployment) -> SnapshotInfo:
        """Build the snapshot the deployment's cold starts fork from, now."""
        config = deployment.config
        store = self._backends.snapshot_store(config.backend)
        if store is None:
            raise SnapshotUnavailable(
                f"{config.name} runs on a backend without function snapshots here (they are "
                "the container backend's, unless sandbox.snapshots is off)"
            )
        env, secret_values = await self._environment(deployment)
        try:
            return await store.create(self._spec(deployment, env, secret_values))
        except SandboxError as exc:
            raise SnapshotUnavailable(f"no snapshot of {config.name}: {exc.message}") from exc

    def _spec(
        self, deployment: Deployment, env: Mapping[str, str], secret_values: tuple[str, ...]
    ) -> InstanceSpec:
        config = deployment.config
        instance_id = f"{config.name}-{uuid.uuid4().hex[:12]}"
        return InstanceSpec(
            instance_id=instance_id,
            function_name=config.name,
            runtime=config.runtime,
            interpreter=deployment.interpreter,
            code_dir=deployment.code_dir,
            work_dir=self._instances_dir / instance_id,
            memory_mb=config.memory_mb,
            timeout_s=config.timeout_s,
            network=config.network,
            concurrency=config.instance_concurrency,
            init_key=init_key(deployment),
            # A template would keep resolved secrets in its memory: none for such instances.
            init=None if secret_values else init_message(deployment, "", "", env),
            holds_secrets=bool(secret_values),
        )

    async def _environment(
        self, deployment: Deployment
    ) -> tuple[Mapping[str, str], tuple[str, ...]]:
        """The env the instance starts with, and the secret values in it (which the instance's
        captured output and errors are scrubbed of)."""
        config = deployment.config
        refs = secret_refs(config.env)
        if not refs or self._env is None:
            return config.env, ()
        env = await self._env.resolve(config.name, config.env)
        return env, tuple(env[variable] for variable in refs)


def start_phases(
    began: float,
    sandbox_ready: float,
    ready: float,
    reply: Mapping[str, object],
    code_ms: float | None = None,
) -> StartPhases:
    """Where the start's time went. The agent times its own Init (starting the function's
    workers and importing the handler); the rest of the wait after the sandbox started is the
    agent's runtime coming up and answering. A restored snapshot answers without an Init: its
    handler was imported before the snapshot was taken. ``code_ms``, the part of the sandbox's
    start that placed the function's code, is reported apart from it."""
    started_ms = (sandbox_ready - began) * 1000
    code = None if code_ms is None else round(min(code_ms, started_ms), 3)
    sandbox_ms = round(started_ms - (code or 0.0), 3)
    after_sandbox_ms = (ready - sandbox_ready) * 1000
    agent_init_ms = reply.get("init_ms")
    if not isinstance(agent_init_ms, int | float) or isinstance(agent_init_ms, bool):
        return StartPhases(
            sandbox_ms=sandbox_ms, code_ms=code, runtime_ms=round(after_sandbox_ms, 3)
        )
    init_ms = min(float(agent_init_ms), after_sandbox_ms)
    return StartPhases(
        sandbox_ms=sandbox_ms,
        code_ms=code,
        runtime_ms=round(after_sandbox_ms - init_ms, 3),
        init_ms=round(init_ms, 3),
    )
