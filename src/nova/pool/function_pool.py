"""The instances of one function, and the rules for handing out their slots.

Invariants (all mutations happen on the event loop, so no locks):
- an instance is in ``_free`` iff it is READY with a free slot;
- a cold start is begun only while waiters outnumber the slots already on their way
  (``(_starting + _reloading) * concurrency``: an instance being hot-reloaded is back in a few
  milliseconds) and ``max_replicas`` allows: 50 simultaneous first requests start
  ``ceil(50 / concurrency)`` instances at most, never one each (single flight);
- waiters are served first-come first-served by whichever slot frees up first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from nova.core.counters import DaemonCounters
from nova.core.errors import FunctionNotFound, NovaError, SandboxError, TooManyRequests
from nova.core.models import StartKind
from nova.pool.deployment import Deployment
from nova.pool.instance import InstanceState, PooledInstance
from nova.pool.launcher import Launcher

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PoolLimits:
    queue_timeout_s: float
    max_queue: int
    health_check_timeout_s: float
    reload_timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class InstanceInfo:
    """One instance record as GET /functions/{name}/instances shows it."""

    id: str
    state: str
    pid: int | None
    image_id: str
    code_hash: str
    inflight: int
    invocations: int
    age_s: float
    idle_s: float


@dataclass(frozen=True, slots=True)
class PoolStats:
    function: str
    version: str  # "$LATEST" or a published number: each has a pool of its own
    instances: int
    busy: int
    idle: int
    starting: int
    waiting: int
    started: int  # instances started since the pool was created (cold starts + pre-warming)


class FunctionPool:
    def __init__(
        self,
        deployment: Deployment,
        launcher: Launcher,
        limits: PoolLimits,
        counters: DaemonCounters,
    ) -> None:
        self.deployment = deployment
        self._counters = counters  # the daemon's: starts are counted there, across pools
        self._launcher = launcher
        self._limits = limits
        self._instances: list[PooledInstance] = []
        self._free: list[PooledInstance] = []  # a stack: the most recently used is reused first
        self._waiters: deque[asyncio.Future[PooledInstance]] = deque()
        self._starting = 0
        self._reloading = 0  # instances in RELOADING (see _begin_reload)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._emptied = asyncio.Event()  # set when the last instance is removed
        self._renewed_before = 0.0  # instances launched before this are replaced (renew)
        self.instances_started = 0

    # -- handing out slots -------------------------------------------------------------------

    def try_acquire(self) -> PooledInstance | None:
        """A slot free right now, or None (then ``await acquire()``): the warm path of a
        request that finds a free slot costs no coroutine."""
        if self._closed:
            return None
        instance = self._take_free()
        if instance is not None:
            instance.invocations += 1
        return instance

    async def acquire(self) -> tuple[PooledInstance, bool]:
        """A slot on a ready instance, and whether the request had to wait for a cold start."""
        if self._closed:
            raise FunctionNotFound(self.deployment.name)
        instance = self.try_acquire()
        if instance is not None:
            return instance, False
        # Cold means this request waited for an instance to become ready, not merely that the
        # instance is new: a pre-warmed instance's first request is warm.
        waiting_since = time.monotonic()
        instance = await self._wait_for_slot()
        instance.invocations += 1
        return instance, instance.ready_at >= waiting_since

    def _take_free(self) -> PooledInstance | None:
        while self._free:
            instance = self._free[-1]
            if not instance.has_free_slot:  # went away or changed state while listed
                self._free.pop()
                continue
            instance.inflight += 1
            if not instance.has_free_slot:
                self._free.pop()
            return instance
        return None

    async def _wait_for_slot(self) -> PooledInstance:
        if len(self._waiters) >= self._limits.max_queue:
            raise TooManyRequests(
                f"function {self.deployment.name!r} has {len(self._waiters)} requests queued; "
                "raise max_replicas or instance_concurrency, or retry later"
            )
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[PooledInstance] = loop.create_future()
        self._waiters.append(waiter)
        self._start_instances_for_waiters()
        # A timer that fails the waiter (rather than asyncio.timeout + shield: two futures and a
        # task cancellation per queued request under load); _offer skips waiters already done.
        timer = loop.call_later(self._limits.queue_timeout_s, self._expire_waiter, waiter)
        try:
            return await waiter
        except (TooManyRequests, asyncio.CancelledError):
            # Cancelled (the client went away) after a slot was granted: _abandon returns it.
            self._abandon(waiter)
            raise
        finally:
            timer.cancel()

    def _expire_waiter(self, waiter: asyncio.Future[PooledInstance]) -> None:
        if not waiter.done():
            waiter.set_exception(
                TooManyRequests(
                    f"function {self.deployment.name!r} is at max_replicas="
                    f"{self.deployment.config.max_replicas} and no instance freed up within "
                    f"{self._limits.queue_timeout_s:g}s; raise max_replicas or retry later"
                )
            )

    def _abandon(self, waiter: asyncio.Future[PooledInstance]) -> None:
        """Forget a waiter that stopped waiting; a slot granted to it meanwhile goes back."""
        with contextlib.suppress(ValueError):
            self._waiters.remove(waiter)
        if not waiter.done():
            waiter.cancel()
        elif not waiter.cancelled() and waiter.exception() is None:
            self.release(waiter.result())

    def release(self, instance: PooledInstance, *, broken: bool = False) -> None:
        instance.inflight -= 1
        instance.last_used = time.monotonic()
        if broken and instance.state is not InstanceState.DEAD:
            instance.state = InstanceState.RETIRED
        if instance.state is InstanceState.RETIRED:
            if instance.inflight == 0:
                self._spawn(self._remove(instance))
            self._start_instances_for_waiters()
        elif (
            instance.code_hash != self.deployment.code_hash
            and instance.state is InstanceState.READY
        ):
            if instance.inflight == 0:
                self._begin_reload(instance)
        else:
            self._offer(instance)

    def discard(self, instance: PooledInstance) -> None:
        """Kill an instance now (its invocation timed out); its holders still call release()."""
        instance.state = InstanceState.RETIRED
        self._spawn(self._remove(instance))

    def _offer(self, instance: PooledInstance) -> None:
        """Give the instance's free slots to waiters, then list what is left as free."""
        while instance.has_free_slot and self._waiters:
            waiter = self._waiters.popleft()
            if waiter.done():
                continue
            instance.inflight += 1
            waiter.set_result(instance)
        if instance.has_free_slot and instance not in self._free:
            self._free.append(instance)

    # -- starting and stopping instances -----------------------------------------------------

    @property
    def _live(self) -> list[PooledInstance]:
        return [
            i for i in self._instances if i.state in (InstanceState.READY, InstanceState.RELOADING)
        ]

    def _start_instances_for_waiters(self) -> None:
        config = self.deployment.config
        # Cheapest tests first: under load at max_replicas this runs for every queued request,
        # and the exact count of pending waiters walks the whole queue.
        upcoming = self._starting + self._reloading
        if self._closed or len(self._waiters) <= upcoming * config.instance_concurrency:
            return
        live = len(self._live)
        if live + self._starting >= config.max_replicas:
            return
        pending = sum(1 for waiter in self._waiters if not waiter.done())
        while (
            pending > (self._starting + self._reloading) * config.instance_concurrency
            and live + self._starting < config.max_replicas
        ):
            self._starting += 1
            self._spawn(self._start_one())

    def ensure_min_replicas(self) -> None:
        """Pre-warm up to min_replicas instances (called at deploy time and by the reaper)."""
        missing = self.deployment.config.min_replicas - len(self._live) - self._starting
        for _ in range(max(0, missing)):
            self._starting += 1
            self._spawn(self._start_one(prewarm=True))

    async def _start_one(self, *, prewarm: bool = False) -> None:
        deployment = self.deployment
        try:
            instance = await self._launcher.launch(deployment, self._on_lost)
        except NovaError as exc:
            self._starting -= 1
            self._counters.failed_starts += 1
            logger.warning("cold start of %s failed: %s", deployment.name, exc.message)
            self._fail_waiters(exc, deployment.config.instance_concurrency)
            return
        except Exception as exc:  # a backend bug must not leave waiters hanging forever
            self._starting -= 1
            self._counters.failed_starts += 1
            logger.exception("cold start of %s crashed", deployment.name)
            self._fail_waiters(
                SandboxError(f"cold start failed: {exc}"), deployment.config.instance_concurrency
            )
            return
        self._starting -= 1
        instance.ready_at = time.monotonic()
        self.instances_started += 1
        if prewarm:
            self._counters.prewarm_starts += 1
        else:
            self._counters.cold_starts += 1
        if (
            self._closed
            or instance.fingerprint != self.deployment.config.runtime_fingerprint()
            or instance.launched_at < self._renewed_before
        ):
            # The function changed or went away, or a secret it uses changed, while we started it.
            await instance.destroy()
            self._start_instances_for_waiters()
            return
        if prewarm:
            instance.start_kind = StartKind.PREWARMED
        self._instances.append(instance)
        if instance.code_hash != self.deployment.code_hash:
            self._begin_reload(instance)
        else:
            self._offer(instance)

    def _fail_waiters(self, error: NovaError, count: int) -> None:
        for _ in range(count):
            while self._waiters:
                waiter = self._waiters.popleft()
                if not waiter.done():
                    waiter.set_exception(error)
                    break

    def _begin_reload(self, instance: PooledInstance) -> None:
        """Hot-reload an idle instance with the current code. It is RELOADING from this call on,
        so no request takes it and waiters count it as a slot on its way."""
        instance.state = InstanceState.RELOADING
        self._reloading += 1
        self._spawn(self._reload(instance))

    async def _reload(self, instance: PooledInstance) -> None:
        failure: Exception | None = None
        try:
            # Again if the code changed meanwhile; not if the instance was retired or lost.
            while (
                instance.code_hash != self.deployment.code_hash
                and instance.state is InstanceState.RELOADING
            ):
                deployment = self.deployment
                await instance.reload(
                    deployment.code_dir, deployment.code_hash, self._limits.reload_timeout_s
                )
        except (NovaError, OSError, TimeoutError) as exc:
            failure = exc
        finally:
            self._reloading -= 1
        if failure is not None:
            logger.warning(
                "hot reload of %s failed, replacing it: %s", instance.instance_id, failure
            )
            await self._remove(instance)
            self._start_instances_for_waiters()
        elif instance.state is InstanceState.RELOADING:
            instance.state = InstanceState.READY
            self._offer(instance)

    async def _remove(self, instance: PooledInstance) -> None:
        with contextlib.suppress(ValueError):
            self._instances.remove(instance)
        with contextlib.suppress(ValueError):
            self._free.remove(instance)
        if not self._instances:
            self._emptied.set()
        await instance.destroy()

    def _on_lost(self, instance: PooledInstance) -> None:
        """The agent connection broke: idle instances go now, busy ones on release."""
        if instance.state is InstanceState.DEAD:
            return
        instance.state = InstanceState.RETIRED
        if instance.inflight == 0:
            self._spawn(self._remove(instance))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- changes, maintenance, shutdown --------------------------------------------------------

    def update(self, deployment: Deployment) -> None:
        """Switch to a new deployment: hot-reload code where possible, else replace instances."""
        old_fingerprint = self.deployment.config.runtime_fingerprint()
        self.deployment = deployment
        if deployment.config.runtime_fingerprint() != old_fingerprint or not deployment.hot_reload:
            for instance in list(self._instances):
                if (
                    instance.code_hash == deployment.code_hash
                    and instance.fingerprint == deployment.config.runtime_fingerprint()
                ):
                    continue
                instance.state = InstanceState.RETIRED
                if instance.inflight == 0:
                    self._spawn(self._remove(instance))
        else:
            for instance in list(self._instances):
                if (
                    instance.state is InstanceState.READY
                    and instance.inflight == 0
                    and instance.code_hash != deployment.code_hash
                ):
                    self._begin_reload(instance)
        self._start_instances_for_waiters()
        self.ensure_min_replicas()

    def renew(self, before: float) -> None:
        """Replace the instances launched before ``before`` (a ``time.time()``): their
        environment changed outside the config (a secret they use). Idle ones stop now, busy
        ones after their invocation, and one still starting is dropped when it is ready."""
        self._renewed_before = max(self._renewed_before, before)
        for instance in list(self._instances):
            if instance.state is InstanceState.DEAD or instance.launched_at >= before:
                continue
            instance.state = InstanceState.RETIRED
            if instance.inflight == 0:
                self._spawn(self._remove(instance))
        self._start_instances_for_waiters()
        self.ensure_min_replicas()

    def retire_instances(self) -> int:
        """Scale to zero: stop every instance (idle ones now, busy ones after their
        invocation); the pool stays, so the next call starts one, from the function's snapshot
        where it has one. min_replicas instances are started again. Returns how many."""
        retired = 0
        for instance in list(self._instances):
            if instance.state in (InstanceState.DEAD, InstanceState.RETIRED):
                continue
            instance.state = InstanceState.RETIRED
            retired += 1
            if instance.inflight == 0:
                self._spawn(self._remove(instance))
        self.ensure_min_replicas()
        return retired

    async def reap_idle(self, idle_ttl_s: float) -> int:
        """Stop instances idle for longer than the TTL, keeping min_replicas; returns how many."""
        now = time.monotonic()
        keep = self.deployment.config.min_replicas
        idle = sorted(
            (i for i in self._instances if i.state is InstanceState.READY and i.inflight == 0),
            key=lambda i: i.last_used,
        )
        surplus = len(self._live) - keep
        expired = [i for i in idle if now - i.last_used > idle_ttl_s][: max(0, surplus)]
        for instance in expired:
            await self._remove(instance)
        self.ensure_min_replicas()
        return len(expired)

    async def check_health(self) -> int:
        """Ping idle instances; remove the ones that do not answer. Returns how many were removed."""
        idle = [i for i in self._instances if i.state is InstanceState.READY and i.inflight == 0]
        results = await asyncio.gather(
            *(i.ping(self._limits.health_check_timeout_s) for i in idle), return_exceptions=True
        )
        removed = 0
        for instance, result in zip(idle, results, strict=True):
            if isinstance(result, BaseException) and instance.state is not InstanceState.DEAD:
                logger.warning(
                    "instance %s failed its health check: %r; replacing it",
                    instance.instance_id,
                    result,
                )
                await self._remove(instance)
                removed += 1
        self.ensure_min_replicas()
        return removed

    async def retire(self, grace_s: float) -> None:
        """Wind the pool down after its function was deleted: it takes no more requests (queued
        ones fail with FunctionNotFound), idle instances stop now and running invocations may
        finish for up to ``grace_s`` before everything left is killed."""
        self._closed = True
        self._fail_waiters(FunctionNotFound(self.deployment.name), len(self._waiters))
        for instance in list(self._instances):
            if instance.state is not InstanceState.DEAD:
                instance.state = InstanceState.RETIRED
            if instance.inflight == 0:
                self._spawn(self._remove(instance))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace_s):
                while self._instances:
                    self._emptied.clear()
                    await self._emptied.wait()
        await self.close()

    async def close(self) -> None:
        """Stop everything now (daemon stopping after its drain, or a retirement's end)."""
        self._closed = True
        self._fail_waiters(FunctionNotFound(self.deployment.name), len(self._waiters))
        await asyncio.gather(
            *(self._remove(i) for i in list(self._instances)), return_exceptions=True
        )
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def instances(self) -> list[InstanceInfo]:
        now = time.monotonic()
        return [
            InstanceInfo(
                id=i.instance_id,
                state=i.state.value,
                pid=i.sandbox.pid,
                image_id=i.sandbox.image_id,
                code_hash=i.code_hash,
                inflight=i.inflight,
                invocations=i.invocations,
                age_s=round(now - i.started_at, 3),
                idle_s=round(now - i.last_used, 3) if i.inflight == 0 else 0.0,
            )
            for i in self._instances
        ]

    def state_counts(self) -> dict[str, int]:
        """Instances per state, those "starting", and the requests "waiting" for a slot."""
        waiting = sum(1 for waiter in self._waiters if not waiter.done())
        counts = {"starting": self._starting, "waiting": waiting}
        for instance in self._instances:
            state = instance.state.value
            counts[state] = counts.get(state, 0) + 1
        return counts

    def stats(self) -> PoolStats:
        return PoolStats(
            function=self.deployment.name,
            version=self.deployment.version,
            instances=len(self._live),
            busy=sum(1 for i in self._instances if i.inflight > 0),
            idle=sum(1 for i in self._live if i.inflight == 0),
            starting=self._starting,
            waiting=sum(1 for waiter in self._waiters if not waiter.done()),
            started=self.instances_started,
        )
