"""The snapshot manager of the container backend: one function template per (init key, memory
size), built on demand, forked for every cold start it can serve, and dropped when it no longer
matches, dies, idles past its TTL or does not fit the memory budget.

A start asks :meth:`SnapshotManager.start` first. It answers a forked instance (a hit), or None
and the backend starts the slow way: the template is not ready yet (a miss, which begins its
build when the mode is ``first_invoke``), or the fork failed (a fallback: counted, logged, the
template checked and rebuilt). Never an error: a snapshot only ever makes a start faster.

A dropped template stops serving at once but keeps running while instances forked from it do:
they live in pid namespaces nested in the template's, so its end would be theirs. It goes once
the last of them is gone (state ``retired`` until then).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace

from nova.core.counters import DaemonCounters
from nova.core.errors import NovaError, SandboxError
from nova.sandbox.base import InstanceSpec, SnapshotInfo
from nova.sandbox.container.forked import ForkedInstance
from nova.sandbox.container.prestart import PrestartedInstance, PrestartKey, PrestartPools
from nova.sandbox.container.snapshot_policy import (
    Entry,
    SnapshotMode,
    SnapshotPolicy,
    can_snapshot,
    snapshot_id,
    socket_notice,
)
from nova.sandbox.container.template import FunctionTemplate
from nova.sandbox.linux.cgroups import CgroupLimits

logger = logging.getLogger(__name__)

RETRY_FAILED_BUILD_S = 30.0  # a template whose build failed is tried again after this


class SnapshotManager:
    def __init__(
        self,
        build: Callable[[InstanceSpec], Awaitable[FunctionTemplate]],
        policy: SnapshotPolicy,
        counters: DaemonCounters,
        cpu_boost_s: float,
    ) -> None:
        self._build = build
        self._policy = policy
        self._counters = counters
        self._cpu_boost_s = cpu_boost_s
        self._entries: dict[str, Entry] = {}
        self._retired: dict[int, Entry] = {}  # dropped, with instances still running
        self._tasks: set[asyncio.Task[None]] = set()
        self._maintenance: asyncio.Task[None] | None = None
        self.prestarted: PrestartPools | None = None  # set by the backend when it has them

    @property
    def mode(self) -> SnapshotMode:
        return self._policy.mode

    async def start(self, spec: InstanceSpec) -> ForkedInstance | None:
        """An instance forked from ``spec``'s template, or None: start it the slow way."""
        if self._policy.mode is SnapshotMode.OFF:
            return None
        if spec.holds_secrets:
            self._counters.snapshot_fallbacks += 1  # never a template holding secret values
            return None
        if not can_snapshot(spec):
            return None
        self._ensure_maintenance()
        entry = self._entries.get(snapshot_id(spec))
        if entry is None or entry.state != "ready" or entry.template is None:
            self._counters.snapshot_misses += 1
            delay_s = self._policy.build_delay_s
            if entry is None:
                self._drop_changed(spec)
                entry = self._begin_build(spec, delay_s=delay_s)
            elif entry.state == "failed" and time.monotonic() - entry.last_used > (
                RETRY_FAILED_BUILD_S
            ):
                self._begin_build(spec, entry, delay_s=delay_s)
            entry.misses += 1
            return None
        entry.last_used, entry.last_used_at = time.monotonic(), time.time()
        if not entry.template.alive():
            self._fall_back(entry, spec, "the template died")
            return None
        instance, entry.spare = entry.spare, None
        if instance is not None and not instance.alive():
            self._spawn(instance.kill())
            instance = None
        if instance is None:
            try:
                instance = await self._fork(entry, spec)
            except SandboxError as exc:
                self._fall_back(entry, spec, str(exc))
                return None
        instance.adopt(spec)
        instance.start_notice = socket_notice(len(entry.template.sockets))
        instance.start_boost(self._cpu_boost_s)
        entry.hits += 1
        self._counters.snapshot_starts += 1
        self._fork_ahead(entry)
        return instance

    async def claim_prestarted(
        self, spec: InstanceSpec, key: PrestartKey, limits: CgroupLimits
    ) -> PrestartedInstance | None:
        """A pre-started runtime's instance for ``spec`` (Init to come), or None."""
        if self.prestarted is None:
            return None
        self._ensure_maintenance()
        return await self.prestarted.claim(spec, key, limits, self._cpu_boost_s)

    async def _fork(self, entry: Entry, spec: InstanceSpec) -> ForkedInstance:
        assert entry.template is not None  # callers checked
        instance = await entry.template.fork(spec)
        entry.children.add(instance)
        instance.on_kill = lambda: self._child_gone(entry, instance)
        self._spawn(entry.template.prepare_spare())
        return instance

    def _fork_ahead(self, entry: Entry) -> None:
        if (
            self._policy.fork_ahead
            and entry.state == "ready"
            and entry.spare is None
            and not entry.forking_spare
        ):
            entry.forking_spare = True
            self._spawn(self._fork_spare(entry))

    async def _fork_spare(self, entry: Entry) -> None:
        spec = entry.spec
        instance_id = f"{spec.function_name}-{uuid.uuid4().hex[:12]}"
        spec = replace(spec, instance_id=instance_id, work_dir=spec.work_dir.parent / instance_id)
        try:
            spare = await self._fork(entry, spec)
        except SandboxError as exc:
            logger.info("could not fork ahead for %s: %s", spec.function_name, exc)
            return
        finally:
            entry.forking_spare = False
        if entry.state == "ready" and entry.spare is None:
            entry.spare = spare
        else:
            await spare.kill()

    def _fall_back(self, entry: Entry, spec: InstanceSpec, reason: str) -> None:
        entry.fallbacks += 1
        self._counters.snapshot_fallbacks += 1
        logger.warning(
            "snapshot start of %s fell back to a normal start: %s", spec.function_name, reason
        )
        if entry.template is not None and not entry.template.alive():
            self._rebuild(entry, "the template died")

    async def create(self, spec: InstanceSpec) -> SnapshotInfo:
        """Build ``spec``'s template now (or return the ready one)."""
        if spec.holds_secrets:
            raise SandboxError(
                f"{spec.function_name}'s environment holds secrets, which a snapshot would "
                "keep in its memory: its instances always start the normal way"
            )
        if not can_snapshot(spec):
            raise SandboxError(
                "only persistent Python functions without network: true can have a snapshot "
                "on the container backend"
            )
        self._ensure_maintenance()
        entry = self._entries.get(snapshot_id(spec))
        if entry is None:
            self._drop_changed(spec)
            entry = self._begin_build(spec)
        elif entry.state == "failed":
            self._begin_build(spec, entry)
        if entry.task is not None:
            await asyncio.shield(entry.task)
        if entry.state != "ready":
            raise SandboxError(f"the snapshot of {spec.function_name} failed: {entry.detail}")
        return self._info(entry)

    def list(self) -> list[SnapshotInfo]:
        entries = [*self._entries.values(), *self._retired.values()]
        pools = self.prestarted.list() if self.prestarted is not None else []
        infos = [*(self._info(entry) for entry in entries), *pools]
        return sorted(infos, key=lambda info: info.created_at)

    def room_bytes(self) -> int:
        """What the memory budget leaves to pre-started runtimes after the templates."""
        used = sum(e.template.memory_bytes() for e in self._entries.values() if e.template)
        return self._policy.memory_budget_bytes - used

    async def delete(self, snapshot_id: str) -> bool:
        entry = self._entries.get(snapshot_id)
        if entry is None:
            prestarted = self.prestarted
            return prestarted is not None and await prestarted.drop(snapshot_id, "on request")
        await self._drop(entry, "deleted on request")
        return True

    async def retire(self, function_name: str, version: str | None, reason: str) -> int:
        entries = [
            entry
            for entry in self._entries.values()
            if entry.spec.function_name == function_name
            and (version is None or entry.version == version)
        ]
        for entry in entries:
            await self._drop(entry, reason)
        return len(entries)

    def _info(self, entry: Entry) -> SnapshotInfo:
        template = entry.template
        return SnapshotInfo(
            id=entry.id,
            backend="container",
            function=entry.spec.function_name,
            version=entry.version,
            memory_mb=entry.spec.memory_mb,
            state=entry.state,
            size_bytes=template.memory_bytes() if template is not None else 0,
            hits=entry.hits,
            misses=entry.misses,
            fallbacks=entry.fallbacks,
            forked_ahead=int(entry.spare is not None and entry.spare.alive()),
            created_at=entry.created_at,
            last_used_at=entry.last_used_at,
            detail=entry.detail,
        )

    def _begin_build(
        self, spec: InstanceSpec, entry: Entry | None = None, *, delay_s: float = 0.0
    ) -> Entry:
        """Build into ``entry`` (a failed one tried again) or a new one."""
        entry = entry or Entry(snapshot_id(spec), spec)
        self._entries[entry.id] = entry
        entry.state, entry.detail, entry.last_used = "building", "", time.monotonic()
        entry.task = self._spawn(self._build_entry(entry, delay_s))
        return entry

    async def _build_entry(self, entry: Entry, delay_s: float) -> None:
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        started = time.perf_counter()
        try:
            template = await self._build(entry.spec)
        except (NovaError, OSError) as exc:
            entry.state, entry.detail, entry.task = "failed", str(exc), None
            logger.warning("snapshot of %s not built: %s", entry.spec.function_name, exc)
            return
        entry.task = None
        if self._entries.get(entry.id) is not entry:  # dropped while it was building
            await template.kill()
            return
        entry.template, entry.state = template, "ready"
        self._counters.snapshot_builds += 1
        self._fork_ahead(entry)
        took_ms = (time.perf_counter() - started) * 1000
        logger.info(
            "snapshot %s of %s built in %.0f ms", entry.id, entry.spec.function_name, took_ms
        )
        if template.sockets:
            logger.warning(
                "function %s: its init code opened %d socket(s); instances started from its "
                "snapshot get them closed (open connections in the handler instead)",
                entry.spec.function_name,
                len(template.sockets),
            )
        await self._enforce_budget()

    def _drop_changed(self, spec: InstanceSpec) -> None:
        """A new key for a function version that has a template: its code, config, runtime
        image or memory changed, so the old template can never serve it again."""
        version = str((spec.init or {}).get("function_version", ""))
        for entry in list(self._entries.values()):
            if entry.spec.function_name == spec.function_name and entry.version == version:
                self._drop_soon(entry, "the function changed (new code or config)")

    def _rebuild(self, entry: Entry, reason: str) -> None:
        self._drop_soon(entry, reason)
        self._begin_build(entry.spec)

    def _drop_soon(self, entry: Entry, reason: str) -> None:
        """Out of service now (no start finds it); stopped in the background."""
        if self._entries.get(entry.id) is entry:
            del self._entries[entry.id]
        self._spawn(self._drop(entry, reason))

    async def _drop(self, entry: Entry, reason: str) -> None:
        if self._entries.get(entry.id) is entry:
            del self._entries[entry.id]
        if entry.task is not None:
            entry.task.cancel()
        self._counters.snapshot_drops += 1
        logger.info("dropped snapshot %s of %s: %s", entry.id, entry.spec.function_name, reason)
        entry.detail, entry.state = reason, "dropped"  # from now on nothing forks from it
        spare, entry.spare = entry.spare, None
        if spare is not None:
            await spare.kill()
        template, entry.template = entry.template, None
        if template is None:
            return
        if entry.children:
            entry.state, entry.template = "retired", template
            self._retired[id(entry)] = entry
            return
        await template.kill()

    def _child_gone(self, entry: Entry, instance: ForkedInstance) -> None:
        entry.children.discard(instance)
        if not entry.children and entry.state == "retired":
            self._retired.pop(id(entry), None)
            template, entry.template = entry.template, None
            if template is not None:
                self._spawn(template.kill())

    async def _enforce_budget(self) -> None:
        ready = [e for e in self._entries.values() if e.template is not None]
        total = sum(e.template.memory_bytes() for e in ready if e.template is not None)
        for entry in sorted(ready, key=lambda e: e.last_used):
            if total <= self._policy.memory_budget_bytes:
                break
            size = entry.template.memory_bytes() if entry.template is not None else 0
            await self._drop(entry, "over the snapshot memory budget (least recently used)")
            total -= size

    def _ensure_maintenance(self) -> None:
        if self._maintenance is None:
            self._maintenance = asyncio.create_task(self._maintain(), name="snapshot-manager")

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(self._policy.health_interval_s)
            try:
                await self.check()
            except Exception:  # a maintenance failure must not end the loop
                logger.exception("snapshot maintenance failed")

    async def check(self) -> None:
        """Drop templates idle past the TTL; rebuild any that died or do not answer a ping."""
        now = time.monotonic()
        for entry in list(self._entries.values()):
            template = entry.template
            if template is None:
                continue
            if now - entry.last_used > self._policy.ttl_s:
                await self._drop(entry, f"unused for {self._policy.ttl_s:.0f} s (TTL)")
            elif not template.alive():
                self._rebuild(entry, "the template died")
            elif not await template.ping(2.0):
                self._rebuild(entry, "the template failed its health check")
        await self._enforce_budget()
        if self.prestarted is not None:
            self._counters.snapshot_drops += await self.prestarted.expire(self._policy.ttl_s)

    def _spawn(self, work: Awaitable[None]) -> asyncio.Task[None]:
        async def run() -> None:
            await work

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        if self.prestarted is not None:
            await self.prestarted.close()
        if self._maintenance is not None:
            self._maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        entries = [*self._entries.values(), *self._retired.values()]
        self._entries.clear()
        self._retired.clear()
        await asyncio.gather(
            *(child.kill() for entry in entries for child in list(entry.children)),
            return_exceptions=True,
        )
        await asyncio.gather(
            *(e.template.kill() for e in entries if e.template is not None),
            return_exceptions=True,
        )
