"""Pre-started runtimes (Node) on the container backend: a cold start takes an instance whose
sandbox and runtime are up, and Init loads the function into it. The instance must be isolated
exactly as one started the normal way (the same sandbox, user, capabilities and filter; its
own namespaces, /tmp and processes), and every way the pool can fail is a normal start.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from nova.core.counters import DaemonCounters
from nova.sandbox.base import InstanceSpec, SnapshotInfo
from nova.sandbox.container.backend import ContainerBackend
from nova.sandbox.container.snapshot_policy import SnapshotPolicy
from tests.escape.conftest import INTERPRETERS, MAX_MESSAGE_BYTES, AgentSession, init_message

pytestmark = [
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.usefixtures("container_available"),
]

PEEK = """
const fs = require('fs');
const os = require('os');
let calls = 0;
const loadedAt = process.hrtime.bigint().toString();

exports.handler = async (event) => {
  calls += 1;
  if (event.write) fs.writeFileSync('/tmp/' + event.write, 'mine');
  let codeWrite = 'written';
  try { fs.writeFileSync('/code/intruder', 'x'); } catch (err) { codeWrite = err.code; }
  let shadow = 'read';
  try { fs.readFileSync('/etc/shadow'); } catch (err) { shadow = err.code; }
  const ns = {};
  for (const kind of ['mnt', 'pid', 'net', 'ipc', 'uts']) ns[kind] = fs.readlinkSync('/proc/self/ns/' + kind);
  return {
    calls, loadedAt, pid: process.pid,
    tmp: fs.readdirSync('/tmp').filter((name) => !name.startsWith('nova-')).sort(),
    pids: fs.readdirSync('/proc').filter((name) => /^\\d+$/.test(name)).map(Number).sort((a, b) => a - b),
    status: fs.readFileSync('/proc/self/status', 'utf8').split('\\n')
      .filter((line) => /^(Uid|Gid|Cap|NoNewPrivs|Seccomp)/.test(line)),
    ns, hostname: os.hostname(), codeWrite, shadow,
    env: Object.keys(process.env).sort(),
  };
};
"""


class Prestarts:
    """A container backend with pre-started runtimes, and a client for Node functions."""

    def __init__(self, workspace: Path, policy: SnapshotPolicy | None = None) -> None:
        self.counters = DaemonCounters()
        policy = policy or SnapshotPolicy(health_interval_s=3600)
        self.backend = ContainerBackend(
            MAX_MESSAGE_BYTES, snapshots=policy, counters=self.counters, prestart=1
        )
        assert self.backend.function_snapshots is not None
        self.manager = self.backend.function_snapshots
        self.workspace = workspace
        self.code_dir = workspace / "code" / uuid.uuid4().hex[:8]
        self.code_dir.mkdir(parents=True)
        (self.code_dir / "index.js").write_text(PEEK)
        self.sessions: list[AgentSession] = []

    def spec(self, memory_mb: int = 128) -> InstanceSpec:
        instance_id = f"pre-{uuid.uuid4().hex[:10]}"
        init = init_message("", "", memory_mb, 10, runtime="node", handler="index.handler")
        return InstanceSpec(
            instance_id=instance_id,
            function_name="prestarted",
            runtime="node",
            interpreter=INTERPRETERS["node"],
            code_dir=self.code_dir,
            work_dir=self.workspace / "instances" / instance_id,
            memory_mb=memory_mb,
            timeout_s=10,
            network=False,
            init_key=f"node-{memory_mb}",
            init=init,
        )

    async def start(self, memory_mb: int = 128) -> tuple[AgentSession, dict[str, Any]]:
        session = AgentSession(await self.backend.start(self.spec(memory_mb)))
        self.sessions.append(session)
        reply = await session.init(memory_mb, 10, runtime="node", handler="index.handler")
        assert reply.get("ok"), reply
        return session, reply

    async def pool(self, state: str = "ready") -> SnapshotInfo:
        for _ in range(600):
            pools = [info for info in self.manager.list() if info.kind == "prestarted"]
            if pools and pools[0].state == state:
                return pools[0]
            await asyncio.sleep(0.05)
        raise AssertionError(f"no {state} pre-started pool: {self.manager.list()}")

    async def close(self) -> None:
        await asyncio.gather(*(session.instance.kill() for session in self.sessions))
        await self.backend.close()


@pytest_asyncio.fixture(loop_scope="session")
async def prestarts(workspace: Path) -> AsyncIterator[Prestarts]:
    box = Prestarts(workspace)
    try:
        yield box
    finally:
        await box.close()


async def _call(session: AgentSession, event: Any = None) -> Any:
    message = {"type": 2, "event": event or {}, "request_id": str(uuid.uuid4())}
    reply = await session.request(message, timeout_s=20)
    assert reply.get("error") is None, reply
    return reply["output"]


async def test_a_prestarted_instance_is_isolated_as_a_normal_one(prestarts: Prestarts) -> None:
    slow, first_reply = await prestarts.start()  # a miss: the normal way; the pool fills
    assert first_reply["prestarted"] is False
    await prestarts.pool()
    one, reply = await prestarts.start()
    assert reply["prestarted"] is True
    await prestarts.pool()
    two, _ = await prestarts.start()

    normal = await _call(slow)
    seen_by_one = await _call(one, {"write": "one"})
    seen_by_two = await _call(two, {"write": "two"})
    # The same user, capabilities, no_new_privs and seccomp filter; no write to /code, no
    # read of the host's secrets; the same environment a worker spawned for it has.
    for view in (seen_by_one, seen_by_two):
        assert view["status"] == normal["status"]
        assert view["hostname"] == normal["hostname"]
        assert (view["codeWrite"], view["shadow"]) == (normal["codeWrite"], normal["shadow"])
        assert view["codeWrite"] in ("EROFS", "EACCES")
        assert view["env"] == normal["env"]
        assert view["calls"] == 1  # its own module state, loaded into its own runtime
    assert "CapEff:\t0000000000000000" in seen_by_one["status"]
    # Its own /tmp, processes and namespaces.
    assert seen_by_one["tmp"] == ["one"]
    assert seen_by_two["tmp"] == ["two"]
    assert seen_by_one["pids"] == normal["pids"]
    for kind in ("mnt", "pid", "net", "ipc", "uts"):
        assert seen_by_one["ns"][kind] != seen_by_two["ns"][kind], kind

    pool = await prestarts.pool()
    assert (pool.kind, pool.function, pool.memory_mb) == ("prestarted", "", 128)
    assert (pool.hits, pool.misses, pool.fallbacks) == (2, 1, 0)
    assert pool.forked_ahead == 1  # refilled after each claim
    assert pool.size_bytes > 0


async def test_a_pool_instance_that_died_falls_back_counted(prestarts: Prestarts) -> None:
    await prestarts.start()
    await prestarts.pool()
    pools = prestarts.manager.prestarted
    assert pools is not None
    waiting = next(iter(pools._pools.values())).ready[0]
    assert waiting.cgroup is not None
    for pid in waiting.cgroup.pids():
        # As an OOM kill of the idle runtime would; killing the chain's head may already have
        # taken the pids listed after it.
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for _ in range(1000):  # a loaded host takes a while to reap the killed chain
        if not waiting.alive():
            break
        await asyncio.sleep(0.02)
    assert not waiting.alive()

    session, reply = await prestarts.start()
    assert reply["prestarted"] is False
    assert (await _call(session))["calls"] == 1
    assert (await prestarts.pool()).fallbacks == 1


async def test_another_memory_size_has_its_own_pool_and_pools_can_be_dropped(
    prestarts: Prestarts,
) -> None:
    await prestarts.start(128)
    await prestarts.start(256)
    pools = [info for info in prestarts.manager.list() if info.kind == "prestarted"]
    assert sorted(info.memory_mb for info in pools) == [128, 256]
    for info in pools:
        assert await prestarts.manager.delete(info.id)
    assert [info for info in prestarts.manager.list() if info.kind == "prestarted"] == []


async def test_a_pool_is_not_refilled_past_the_memory_budget(workspace: Path) -> None:
    box = Prestarts(workspace, SnapshotPolicy(memory_budget_bytes=1, health_interval_s=3600))
    try:
        await box.start()  # a miss: the pool makes its first instance (its size unknown yet)
        await box.pool()
        _, reply = await box.start()
        assert reply["prestarted"] is True
        # One instance's size is known now, and it does not fit a budget of one byte.
        info = next(info for info in box.manager.list() if info.kind == "prestarted")
        assert (info.forked_ahead, info.state) == (0, "empty")
        assert "memory budget" in info.detail
    finally:
        await box.close()


async def test_a_runtime_that_fails_to_pre_start_is_not_retried_on_every_start(
    prestarts: Prestarts,
) -> None:
    broken = replace(prestarts.spec(), interpreter="/usr/bin/false")  # exits at once
    instance = await prestarts.backend.start(broken)  # a miss: the pool tries to fill
    await instance.kill()
    info = await prestarts.pool("empty")
    assert "could not pre-start node" in info.detail
    pools = prestarts.manager.prestarted
    assert pools is not None
    pool = next(iter(pools._pools.values()))
    failed_at = pool.failed_at
    again = await prestarts.backend.start(replace(broken, instance_id="pre-again"))
    await again.kill()
    await asyncio.gather(*pools._tasks)  # a pre-start begun by that start (none should be)
    assert (pool.failed_at, pool.misses) == (failed_at, 2)  # not tried again
