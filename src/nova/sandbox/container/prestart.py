"""Pre-started runtimes: for runtimes that cannot fork (Node, Ruby), container instances whose
sandbox is up and whose agent has started the runtime with no function loaded
(nova.agent.prestart), one pool per (runtime, interpreter, image, memory size).

A cold start of a function that fits takes one: its code goes into the instance's code
directory, the function's limits onto its cgroups (as a standby claim), and Init turns the
waiting runtime into the function's worker, so the start pays for loading the handler only.
The pool refills in the background after every claim. The snapshot manager owns the pools: it
lists them (``kind: prestarted``), drops them on request, past their TTL and over the memory
budget it shares with the function templates.

A pool is made by the first start of its kind (a miss: that start goes the normal way). An
instance found dead when claimed is a counted fallback; the start then goes the normal way too.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

from nova.agent.protocol import MsgType
from nova.core.errors import NovaError, SandboxError
from nova.sandbox.base import InstanceSpec, SnapshotInfo
from nova.sandbox.container import bwrap as bw
from nova.sandbox.container.standby import Claimable, cancel_all
from nova.sandbox.container.template import ask
from nova.sandbox.linux.cgroups import CgroupLimits, InstanceCgroup

logger = logging.getLogger(__name__)

# Runtime -> the prefixes of environment variables it reads at start-up: a function that sets
# one is started the normal way (a runtime started before would not have seen it).
PRESTART_RUNTIMES = {"node": ("NODE_",), "ruby": ("RUBY", "GEM_")}
PRESTART_TIMEOUT_S = 30.0  # a runtime's start-up takes tens of milliseconds
RETRY_FAILED_S = 30.0  # after a failed pre-start, the pool is not refilled for this long


class PrestartedInstance(Claimable, Protocol):
    """What a pool needs of an instance (ContainerInstance provides it)."""

    @property
    def sock(self) -> socket.socket: ...

    @property
    def cgroup(self) -> InstanceCgroup | None: ...


def _memory_bytes(instance: PrestartedInstance) -> int:
    cgroup = instance.cgroup
    return cgroup.memory_bytes() if cgroup is not None else 0


@dataclass(frozen=True, slots=True)
class PrestartKey:
    runtime: str
    interpreter: str
    image_id: str
    memory_mb: int

    @property
    def id(self) -> str:
        digest = hashlib.sha256(repr(self).encode()).hexdigest()
        return f"pre-{digest[:16]}"


def prestart_key(spec: InstanceSpec, image_id: str) -> PrestartKey | None:
    """The pool a start of ``spec`` can take from, or None when none can serve it: another
    runtime, a runtime that is not started the usual way (several workers, a variable in the
    function's environment the runtime reads only at start-up), network: true, or no
    Init to look at (an environment with secrets is not shown to the backend ahead)."""
    init = spec.init or {}
    env = init.get("env") or {}
    fits = (
        spec.runtime in PRESTART_RUNTIMES
        and init.get("mode") == "persistent"
        and init.get("concurrency", 1) == 1
        and not spec.network
        and not any(name.startswith(PRESTART_RUNTIMES[spec.runtime]) for name in env)
    )
    if not fits:
        return None
    return PrestartKey(spec.runtime, spec.interpreter, image_id, spec.memory_mb)


@dataclass(slots=True)
class _Pool:
    key: PrestartKey
    spec: InstanceSpec  # what its instances are started as (no function yet)
    ready: list[PrestartedInstance] = field(default_factory=list)
    starting: int = 0
    hits: int = 0
    misses: int = 0
    fallbacks: int = 0
    created_at: float = field(default_factory=time.time)
    last_used_at: float | None = None
    last_used: float = field(default_factory=time.monotonic)
    detail: str = ""
    instance_bytes: int = 0  # what its last pre-started instance held when it came up
    failed_at: float = -RETRY_FAILED_S  # monotonic time its last pre-start failed


class PrestartPools:
    def __init__(
        self,
        size: int,
        launch: Callable[[InstanceSpec], Awaitable[PrestartedInstance]],
        memory_budget_bytes: Callable[[], int],
    ) -> None:
        """``size`` instances per pool; ``launch`` starts one (on the pool's root image);
        ``memory_budget_bytes``: what the pools may hold now (the budget templates leave)."""
        self._size = size
        self._launch = launch
        self._budget = memory_budget_bytes
        self._pools: dict[str, _Pool] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    async def claim(
        self, spec: InstanceSpec, key: PrestartKey, limits: CgroupLimits, boost_s: float
    ) -> PrestartedInstance | None:
        """A pre-started instance become ``spec``'s (Init still to come), or None: start it
        the normal way."""
        pool = self._pools.get(key.id)
        if pool is None:
            pool = self._pools[key.id] = _Pool(key, self._pool_spec(spec, key))
        pool.last_used, pool.last_used_at = time.monotonic(), time.time()
        instance = None
        while pool.ready and instance is None:
            instance = pool.ready.pop()
            if not instance.alive():
                pool.fallbacks += 1
                logger.warning("pre-started %s instance died while waiting", key.runtime)
                await instance.kill()
                instance = None
        self._refill(pool)
        if instance is None:
            pool.misses += 1
            return None
        try:
            await asyncio.to_thread(instance.adopt, spec, limits)
        except OSError as exc:
            pool.fallbacks += 1
            logger.warning("could not claim pre-started %s: %s", instance.instance_id, exc)
            await instance.kill()
            return None
        instance.limit_cpu_after(boost_s, limits.cpu_quota_us)
        pool.hits += 1
        return instance

    def _pool_spec(self, spec: InstanceSpec, key: PrestartKey) -> InstanceSpec:
        return replace(
            spec,
            function_name=f"prestarted-{key.runtime}",
            code_dir=spec.work_dir.parent / "prestart-code",  # empty: no function yet
            init=None,
            init_key=None,
            holds_secrets=False,
        )

    def _refill(self, pool: _Pool) -> None:
        if time.monotonic() - pool.failed_at < RETRY_FAILED_S:
            return  # each cold start would otherwise start a sandbox that fails the same way
        while not self._closed and len(pool.ready) + pool.starting < self._size:
            if self.memory_bytes() + pool.instance_bytes > self._budget():
                pool.detail = "not refilled: the snapshot memory budget is used up"
                return
            pool.starting += 1
            task = asyncio.create_task(self._start_one(pool), name="container-prestart")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _start_one(self, pool: _Pool) -> None:
        instance_id = f"prestarted-{uuid.uuid4().hex[:12]}"
        spec = replace(
            pool.spec, instance_id=instance_id, work_dir=pool.spec.work_dir.parent / instance_id
        )
        instance: PrestartedInstance | None = None
        try:
            spec.code_dir.mkdir(parents=True, exist_ok=True)
            instance = await self._launch(spec)
            await asyncio.wait_for(_prestart(instance, pool.key), PRESTART_TIMEOUT_S)
        except (NovaError, OSError, TimeoutError) as exc:
            pool.detail = f"could not pre-start {pool.key.runtime}: {exc}"
            pool.failed_at = time.monotonic()
            logger.warning("%s", pool.detail)
            if instance is not None:
                await instance.kill()
            return
        finally:
            pool.starting -= 1
        if self._closed or self._pools.get(pool.key.id) is not pool:
            await instance.kill()
        else:
            pool.ready.append(instance)
            pool.instance_bytes, pool.detail = _memory_bytes(instance), ""

    def memory_bytes(self) -> int:
        return sum(_memory_bytes(i) for pool in self._pools.values() for i in pool.ready)

    def list(self) -> list[SnapshotInfo]:
        return [self._info(pool) for pool in self._pools.values()]

    def _info(self, pool: _Pool) -> SnapshotInfo:
        return SnapshotInfo(
            id=pool.key.id,
            backend="container",
            function="",  # any function of the runtime and memory size
            version="",
            memory_mb=pool.key.memory_mb,
            state="ready" if pool.ready else ("building" if pool.starting else "empty"),
            size_bytes=sum(_memory_bytes(i) for i in pool.ready),
            hits=pool.hits,
            misses=pool.misses,
            fallbacks=pool.fallbacks,
            forked_ahead=len(pool.ready),
            created_at=pool.created_at,
            last_used_at=pool.last_used_at,
            detail=pool.detail or f"{pool.key.runtime} ({pool.key.interpreter}), pre-started",
            kind="prestarted",
        )

    async def drop(self, pool_id: str, reason: str) -> bool:
        pool = self._pools.pop(pool_id, None)
        if pool is None:
            return False
        logger.info("dropped pre-started %s pool %s: %s", pool.key.runtime, pool_id, reason)
        ready, pool.ready = pool.ready, []
        await asyncio.gather(*(instance.kill() for instance in ready))
        return True

    async def expire(self, ttl_s: float) -> int:
        """Drop the pools no start used for ``ttl_s``; how many went."""
        now = time.monotonic()
        idle = [pid for pid, pool in self._pools.items() if now - pool.last_used > ttl_s]
        for pool_id in idle:
            await self.drop(pool_id, "unused past its TTL")
        return len(idle)

    async def close(self) -> None:
        self._closed = True
        await cancel_all(self._tasks)
        for pool_id in list(self._pools):
            await self.drop(pool_id, "the daemon stops")


async def _prestart(instance: PrestartedInstance, key: PrestartKey) -> None:
    """Have the instance's agent start the runtime; SandboxError if it did not."""
    message = {
        "type": MsgType.PRESTART,
        "runtime": key.runtime,
        "interpreter": key.interpreter,
        "memory_mb": key.memory_mb,
        "tmp_dir": bw.TMP_DIR,
    }
    reply = await ask(instance.sock, message)
    if not reply.get("ok"):
        raise SandboxError(f"the agent refused Prestart: {reply.get('error')}")
