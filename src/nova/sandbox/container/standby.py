"""Blank container instances started ahead of need (`ContainerOptions.standby`).

A container cold start spends ~35 ms bringing the sandbox and the agent up before Init can even
be sent. A standby instance has done that already: bwrap is up with its namespaces, cgroups and
seccomp filter, the agent is waiting for Init, and /code is bound from an empty host directory
(the instance's own code dir, :mod:`nova.sandbox.instance_code`). Claiming one fills that
directory with the function's code (the read-only bind shows it), applies the function's
memory/pids/CPU limits to the instance's cgroups, and starts its CPU boost; the cold start then
pays for Init only.

Only instances that a fresh start would make identical are claimed: host root (no runtime
image), no network, and a /tmp of the same size (functions of 128 MB and more).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

from nova.core.errors import NovaError
from nova.sandbox.base import InstanceSpec
from nova.sandbox.linux.cgroups import CgroupLimits

logger = logging.getLogger(__name__)

STANDBY_MEMORY_MB = 256  # while idle; the claiming function's limits replace it


class Claimable(Protocol):
    """What the standby pool needs of an instance (ContainerInstance provides it)."""

    @property
    def instance_id(self) -> str: ...

    def alive(self) -> bool: ...

    def adopt(self, spec: InstanceSpec, limits: CgroupLimits) -> None: ...

    def limit_cpu_after(self, delay_s: float, quota_us: int) -> None: ...

    async def kill(self) -> None: ...


class StandbyPool:
    def __init__(
        self,
        size: int,
        work_dir: Path,
        agent_python: str,
        launch: Callable[[InstanceSpec], Awaitable[Claimable]],
    ) -> None:
        self._size = size
        self._work_dir = work_dir
        self._agent_python = agent_python
        self._launch = launch
        self._no_code = work_dir / "standby-code"  # empty: what a blank instance's code is
        self._ready: list[Claimable] = []
        self._starting = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def spec(self) -> InstanceSpec:
        instance_id = f"standby-{uuid.uuid4().hex[:12]}"
        return InstanceSpec(
            instance_id=instance_id,
            function_name="standby",
            runtime="python",
            interpreter=self._agent_python,
            code_dir=self._no_code,
            work_dir=self._work_dir / instance_id,
            memory_mb=STANDBY_MEMORY_MB,
            timeout_s=60.0,
            network=False,
        )

    async def claim(
        self, spec: InstanceSpec, limits: CgroupLimits, boost_s: float
    ) -> Claimable | None:
        """A started instance turned into one of ``spec``'s function, or None if none is ready."""
        self.replenish()
        while self._ready:
            instance = self._ready.pop()
            if not instance.alive():
                await instance.kill()
                continue
            try:
                await asyncio.to_thread(instance.adopt, spec, limits)
            except OSError as exc:
                logger.warning("could not claim standby %s: %s", instance.instance_id, exc)
                await instance.kill()
                continue
            instance.limit_cpu_after(boost_s, limits.cpu_quota_us)
            return instance
        return None

    def replenish(self) -> None:
        while not self._closed and len(self._ready) + self._starting < self._size:
            self._starting += 1
            task = asyncio.create_task(self._start_one(), name="container-standby")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _start_one(self) -> None:
        spec = self.spec()
        try:
            spec.code_dir.mkdir(parents=True, exist_ok=True)
            instance = await self._launch(spec)
        except (NovaError, OSError) as exc:
            logger.warning("could not start a standby container: %s", exc)
            return
        finally:
            self._starting -= 1
        if self._closed:
            await instance.kill()
        else:
            self._ready.append(instance)

    async def close(self) -> None:
        self._closed = True
        await cancel_all(self._tasks)
        ready, self._ready = self._ready, []
        await asyncio.gather(*(instance.kill() for instance in ready))


async def cancel_all(tasks: set[asyncio.Task[None]]) -> None:
    """Cancel the starts still under way and wait until they are gone."""
    for task in list(tasks):
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(*tasks, return_exceptions=True)
