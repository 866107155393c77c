"""Instances forked from a function template (the container backend's function snapshots):
uniqueness after fork, isolation between siblings, and every way a template goes away.

The escape suite runs on forked instances too (``container-snapshot`` in conftest.BACKENDS);
this module covers what only snapshots have.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from nova.core.counters import DaemonCounters
from nova.core.errors import SandboxError
from nova.sandbox.base import InstanceSpec, SandboxInstance
from nova.sandbox.container.backend import ContainerBackend
from nova.sandbox.container.forked import ForkedInstance
from nova.sandbox.container.snapshot_policy import SnapshotMode, SnapshotPolicy, snapshot_id
from nova.sandbox.container.template import FunctionTemplate
from tests.escape.conftest import MAX_MESSAGE_BYTES, AgentSession, init_message

pytestmark = [
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.usefixtures("container_available"),
]

STARTS = 1000  # snapshot starts in the crosstalk test (~20 s here)

STATE = """
import os, random, uuid

calls = 0
seen = []
drawn_at_init = random.random()


def handler(event, context):
    global calls
    calls += 1
    seen.append(context.aws_request_id)
    return {
        "random": random.random(),
        "uuid4": str(uuid.uuid4()),
        "uuid1": str(uuid.uuid1()),
        "calls": calls,
        "seen": list(seen),
        "drawn_at_init": drawn_at_init,
        "request_id": context.aws_request_id,
    }
"""

PEEK = """
import os


def handler(event, context):
    if event.get("write"):
        with open("/tmp/" + event["write"], "w") as f:
            f.write("mine")
    return {
        "tmp": sorted(os.listdir("/tmp")),
        "shm": sorted(os.listdir("/dev/shm")),
        "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        "status": [
            line.strip()
            for line in open("/proc/self/status")
            if line.startswith(("Uid", "Gid", "Cap", "NoNewPrivs", "Seccomp"))
        ],
        "namespaces": {n: os.readlink("/proc/self/ns/" + n) for n in ("mnt", "pid", "net", "ipc", "uts")},
        "hostname": os.uname().nodename,
    }
"""

SOCKET_AT_INIT = """
import socket

held = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)


def handler(event, context):
    try:
        held.getsockname()
    except OSError as exc:
        return {"closed": True, "error": type(exc).__name__}
    return {"closed": False}
"""


class Snapshots:
    """A container backend with snapshots on, and a client that starts instances of code."""

    def __init__(self, workspace: Path, policy: SnapshotPolicy | None = None) -> None:
        self.counters = DaemonCounters()
        policy = policy or SnapshotPolicy(mode=SnapshotMode.FIRST_INVOKE, health_interval_s=3600)
        self.backend = ContainerBackend(MAX_MESSAGE_BYTES, snapshots=policy, counters=self.counters)
        assert self.backend.function_snapshots is not None
        self.manager = self.backend.function_snapshots
        self.workspace = workspace
        self.instances: list[SandboxInstance] = []

    def code(self, source: str) -> Path:
        code_dir = self.workspace / "code" / uuid.uuid4().hex[:8]
        code_dir.mkdir(parents=True)
        (code_dir / "handler.py").write_text(source)
        return code_dir

    def spec(
        self, code_dir: Path, *, key: str | None = None, secrets: bool = False
    ) -> InstanceSpec:
        instance_id = f"snap-{uuid.uuid4().hex[:10]}"
        return InstanceSpec(
            instance_id=instance_id,
            function_name="snapped",
            runtime="python",
            interpreter="/usr/bin/python3",
            code_dir=code_dir,
            work_dir=self.workspace / "instances" / instance_id,
            memory_mb=128,
            timeout_s=10,
            network=False,
            init_key=key or str(code_dir),
            init=None if secrets else init_message("", "", 128, 10),
            holds_secrets=secrets,
        )

    async def start(self, spec: InstanceSpec) -> AgentSession:
        instance = await self.backend.start(spec)
        self.instances.append(instance)
        session = AgentSession(instance)
        if not isinstance(instance, ForkedInstance):
            reply = await session.init(128, 10)
            assert reply.get("ok"), reply
        return session

    async def forked(self, spec: InstanceSpec) -> AgentSession:
        session = await self.start(spec)
        assert isinstance(session.instance, ForkedInstance), "expected a snapshot start"
        return session

    async def close(self) -> None:
        await asyncio.gather(*(i.kill() for i in self.instances))
        await self.backend.close()


@pytest_asyncio.fixture(loop_scope="session")
async def snapshots(workspace: Path) -> AsyncIterator[Snapshots]:
    box = Snapshots(workspace)
    try:
        yield box
    finally:
        await box.close()


async def _call(session: AgentSession, event: Any = None) -> Any:
    request_id = str(uuid.uuid4())
    reply = await session.request(
        {"type": 2, "event": event or {}, "request_id": request_id}, timeout_s=20
    )
    assert reply.get("ok"), reply
    assert reply.get("error") is None, reply
    return reply["output"]


async def test_many_snapshot_starts_share_no_state(snapshots: Snapshots) -> None:
    spec = snapshots.spec(snapshots.code(STATE))
    await snapshots.manager.create(spec)

    async def one() -> Any:
        session = await snapshots.forked(snapshots.spec(spec.code_dir, key=spec.init_key))
        try:
            return await _call(session)
        finally:
            await session.instance.kill()

    outputs: list[Any] = []
    for _ in range(STARTS // 10):
        outputs += await asyncio.gather(*(one() for _ in range(10)))

    assert len({o["random"] for o in outputs}) == STARTS
    assert len({o["uuid4"] for o in outputs}) == STARTS
    assert len({o["uuid1"] for o in outputs}) == STARTS
    assert len({o["request_id"] for o in outputs}) == STARTS
    # Module state is each instance's own: a first call in every one of them.
    assert {o["calls"] for o in outputs} == {1}
    assert all(o["seen"] == [o["request_id"]] for o in outputs)
    # ...copied from the one template that ran the init code once.
    assert len({o["drawn_at_init"] for o in outputs}) == 1
    assert snapshots.counters.snapshot_starts == STARTS


async def test_a_module_level_counter_is_per_instance(snapshots: Snapshots) -> None:
    spec = snapshots.spec(snapshots.code(STATE))
    await snapshots.manager.create(spec)
    first = await snapshots.forked(spec)
    second = await snapshots.forked(snapshots.spec(spec.code_dir, key=spec.init_key))
    assert [(await _call(first))["calls"] for _ in range(3)] == [1, 2, 3]
    assert (await _call(second))["calls"] == 1


async def test_siblings_see_neither_each_other_s_tmp_nor_processes(snapshots: Snapshots) -> None:
    code_dir = snapshots.code(PEEK)
    spec = snapshots.spec(code_dir)
    await snapshots.manager.create(spec)
    one = await snapshots.forked(spec)
    two = await snapshots.forked(snapshots.spec(code_dir, key=spec.init_key))
    slow = await snapshots.start(snapshots.spec(code_dir, key="another key, no template yet"))
    assert not isinstance(slow.instance, ForkedInstance)

    await _call(one, {"write": "one"})
    seen_by_two = await _call(two, {"write": "two"})
    seen_by_one = await _call(one)

    assert seen_by_one["tmp"] == ["one"]
    assert seen_by_two["tmp"] == ["two"]
    assert seen_by_one["shm"] == seen_by_two["shm"] == []
    # Each is pid 1 (the agent) and 2 (its worker) of a pid namespace of its own.
    assert seen_by_one["pids"] == seen_by_two["pids"] == [1, 2]
    for kind in ("mnt", "pid", "net", "ipc", "uts"):
        assert seen_by_one["namespaces"][kind] != seen_by_two["namespaces"][kind], kind
    # The same user, capabilities, no_new_privs and seccomp filter as a slow-path instance.
    slow_view = await _call(slow)
    filters = "Seccomp_filters:\t2"  # the template's, stacked with the same one as slow_view's
    assert filters in seen_by_one["status"]
    assert seen_by_one["status"] == [
        filters if line == "Seccomp_filters:\t1" else line for line in slow_view["status"]
    ]
    assert seen_by_one["hostname"] == slow_view["hostname"]
    assert "CapEff:\t0000000000000000".replace("\t", "") in [
        line.replace("\t", "") for line in seen_by_one["status"]
    ]


async def test_instances_have_their_own_cgroups_with_the_function_s_limits(
    snapshots: Snapshots,
) -> None:
    spec = snapshots.spec(snapshots.code(PEEK))
    await snapshots.manager.create(spec)
    session = await snapshots.forked(spec)
    cgroup = session.instance._cgroup  # type: ignore[attr-defined]
    assert cgroup is not None
    assert session.instance.pid in cgroup.pids()
    limit = int((cgroup.dirs["memory"] / "memory.limit_in_bytes").read_text())
    assert limit == 128 * 1024 * 1024


async def test_sockets_of_the_init_code_are_closed_in_every_instance(
    snapshots: Snapshots,
) -> None:
    spec = snapshots.spec(snapshots.code(SOCKET_AT_INIT))
    await snapshots.manager.create(spec)
    session = await snapshots.forked(spec)
    assert (await _call(session))["closed"] is True


async def test_a_code_update_drops_the_template_and_new_code_answers(
    snapshots: Snapshots,
) -> None:
    old = snapshots.spec(snapshots.code("def handler(e, c):\n    return 'old'\n"), key="v1")
    await snapshots.manager.create(old)
    assert await _call(await snapshots.forked(old)) == "old"
    new_code = snapshots.code("def handler(e, c):\n    return 'new'\n")

    first = await snapshots.start(snapshots.spec(new_code, key="v2"))  # a miss: builds
    assert not isinstance(first.instance, ForkedInstance)
    assert await _call(first) == "new"
    await snapshots.manager.create(snapshots.spec(new_code, key="v2"))
    assert await _call(await snapshots.forked(snapshots.spec(new_code, key="v2"))) == "new"

    listed = {info.id: info for info in snapshots.manager.list()}
    assert listed[snapshot_id(snapshots.spec(new_code, key="v2"))].state == "ready"
    # The old one stops serving at once; its process stays while its instance runs.
    assert listed[snapshot_id(old)].state == "retired"
    assert "changed" in listed[snapshot_id(old)].detail
    assert snapshots.counters.snapshot_drops == 1


async def test_a_dead_template_falls_back_counted_and_is_rebuilt(
    snapshots: Snapshots,
) -> None:
    spec = snapshots.spec(snapshots.code(STATE))
    await snapshots.manager.create(spec)
    entry = snapshots.manager._entries[snapshot_id(spec)]
    dead = entry.template
    assert dead is not None
    assert dead.pid is not None
    os.kill(dead.pid, signal.SIGKILL)  # the template's sandbox, as an OOM kill would
    await _wait_dead(dead)

    fallback = await snapshots.start(snapshots.spec(spec.code_dir, key=spec.init_key))
    assert not isinstance(fallback.instance, ForkedInstance)
    assert (await _call(fallback))["calls"] == 1
    assert snapshots.counters.snapshot_fallbacks == 1

    rebuilt = await snapshots.manager.create(snapshots.spec(spec.code_dir, key=spec.init_key))
    assert rebuilt.state == "ready"
    session = await snapshots.forked(snapshots.spec(spec.code_dir, key=spec.init_key))
    assert (await _call(session))["calls"] == 1


async def test_a_template_that_stops_answering_is_rebuilt_by_the_health_check(
    snapshots: Snapshots,
) -> None:
    spec = snapshots.spec(snapshots.code(STATE))
    await snapshots.manager.create(spec)
    template = snapshots.manager._entries[snapshot_id(spec)].template
    assert template is not None
    for pid in template.instance.cgroup.pids() if template.instance.cgroup else []:
        os.kill(pid, signal.SIGSTOP)  # wedged, not dead

    await snapshots.manager.check()

    assert snapshots.manager._entries[snapshot_id(spec)].template is not template
    info = await snapshots.manager.create(spec)
    assert info.state == "ready"
    assert (await _call(await snapshots.forked(spec)))["calls"] == 1


async def test_an_instance_holding_secrets_never_forks_and_is_counted(
    snapshots: Snapshots,
) -> None:
    code_dir = snapshots.code(STATE)
    session = await snapshots.start(snapshots.spec(code_dir, secrets=True))
    assert not isinstance(session.instance, ForkedInstance)
    assert snapshots.counters.snapshot_fallbacks == 1
    assert snapshots.manager.list() == []


async def test_a_function_whose_init_fails_starts_the_normal_way(snapshots: Snapshots) -> None:
    code_dir = snapshots.code("raise RuntimeError('broken at import')\n")
    with pytest.raises(SandboxError, match="broken at import"):
        await snapshots.manager.create(snapshots.spec(code_dir))
    session = await snapshots.start(snapshots.spec(code_dir))
    assert not isinstance(session.instance, ForkedInstance)
    reply = await session.request({"type": 2, "event": {}}, timeout_s=20)
    assert reply["error"]["type"] == "Runtime.ImportModuleError"


async def test_a_template_over_the_memory_budget_is_dropped(workspace: Path) -> None:
    box = Snapshots(workspace, SnapshotPolicy(memory_budget_bytes=1, health_interval_s=3600))
    try:
        # Over a budget of one byte, the least recently used template goes at once.
        with pytest.raises(SandboxError, match="memory budget"):
            await box.manager.create(box.spec(box.code(STATE)))
        assert box.counters.snapshot_drops == 1
    finally:
        await box.close()


async def test_a_template_unused_past_its_ttl_is_dropped(
    workspace: Path, caplog: pytest.LogCaptureFixture
) -> None:
    box = Snapshots(workspace, SnapshotPolicy(ttl_s=0.0, health_interval_s=3600))
    try:
        spec = box.spec(box.code(STATE))
        await box.manager.create(spec)
        with caplog.at_level(logging.INFO, logger="nova.sandbox.container.snapshots"):
            await box.manager.check()
        assert box.manager.list() == []
        assert box.counters.snapshot_drops == 1
        assert f"dropped snapshot {snapshot_id(spec)}" in caplog.text
        assert "(TTL)" in caplog.text
        session = await box.start(spec)  # a miss: the normal way, and a new build
        assert not isinstance(session.instance, ForkedInstance)
    finally:
        await box.close()


async def _wait_dead(template: FunctionTemplate) -> None:
    await asyncio.to_thread(template.instance._process.wait, 5)  # reaped, so alive() is False
