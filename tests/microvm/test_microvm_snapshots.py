"""VM snapshots: save after Init, restore instead of boot, verified, invalidated, reseeded."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest

from nova.agent.protocol import PROTOCOL_VERSION, MsgType
from nova.sandbox.base import InstanceSpec, SnapshottingInstance
from nova.sandbox.microvm.backend import MicrovmBackend
from tests.escape.conftest import INTERPRETERS, AgentSession

# The session fixtures build runtime images and boot QEMU under TCG: minutes on a cold host.
pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(600)]

CLOCK_GAP_S = 3.0
CLOCK_SLACK_S = 0.5  # guest and host clocks read at different instants

RANDOM = """
import os, random, time

def handler(event, context=None):
    return {"random": random.random(), "urandom": os.urandom(8).hex(), "time": time.time()}
"""


async def launch(
    backend: MicrovmBackend, code_dir: Path, workspace: Path, init_key: str
) -> AgentSession:
    """What the pool's launcher does: start; Init and save unless restored initialised."""
    instance_id = f"snap-{uuid.uuid4().hex[:10]}"
    spec = InstanceSpec(
        instance_id=instance_id,
        function_name="snaptest",
        runtime="python",
        interpreter=INTERPRETERS["python"],
        code_dir=code_dir,
        work_dir=workspace / "instances" / instance_id,
        memory_mb=128,
        timeout_s=20,
        network=False,
        init_key=init_key,
    )
    instance = await backend.start(spec)
    assert isinstance(instance, SnapshottingInstance)
    session = AgentSession(instance)
    if not instance.initialised:
        reply = await session.request(
            {
                "type": MsgType.INIT,
                "protocol": PROTOCOL_VERSION,
                "runtime": "python",
                "handler": "handler.handler",
                "mode": "persistent",
                "code_dir": instance.code_dir,
                "tmp_dir": instance.tmp_dir,
                "interpreter": INTERPRETERS["python"],
                "env": {},
                "function_name": "snaptest",
                "function_version": init_key,
                "memory_mb": 128,
                "timeout_s": 20,
                "concurrency": 1,
            },
            timeout_s=90,
        )
        assert reply.get("ok"), reply
        await instance.save_snapshot()
    return session


async def test_restore_shares_one_snapshot_with_fresh_entropy_and_clock(
    vm_backend: MicrovmBackend, workspace: Path
) -> None:
    code_dir = workspace / "code"
    code_dir.mkdir()
    (code_dir / "handler.py").write_text(RANDOM)
    key = uuid.uuid4().hex
    counters = vm_backend.counters
    restores, failures = counters.vm_restores, counters.vm_restore_failures

    first = await launch(vm_backend, code_dir, workspace, key)
    assert not first.instance.initialised  # nothing to restore yet: a boot
    await first.output({}, timeout_s=60)
    await vm_backend.wait_for_snapshots()
    assert [p.name for p in vm_backend.snapshots.directories() if key[:0] in p.name]

    # The snapshot's clock stops at its save: a gap its restores must not show.
    await asyncio.sleep(CLOCK_GAP_S)

    # two restores at once from the one snapshot
    before = time.time()
    sessions = await asyncio.gather(
        *(launch(vm_backend, code_dir, workspace, key) for _ in range(2))
    )
    try:
        assert all(s.instance.initialised for s in sessions)
        assert counters.vm_restores == restores + 2
        outputs = [await s.output({}, timeout_s=60) for s in sessions]
        after = time.time()
        assert outputs[0]["random"] != outputs[1]["random"]
        assert outputs[0]["urandom"] != outputs[1]["urandom"]
        for output in outputs:  # the host's clock, not the snapshot's
            assert before - CLOCK_SLACK_S <= output["time"] <= after + CLOCK_SLACK_S

        # a corrupt snapshot: counted, deleted, and the start boots instead
        [snapshot] = [
            p for p in vm_backend.snapshots.directories() if p.name.startswith("snaptest-")
        ]
        with (snapshot / "state").open("r+b") as state:
            state.seek(100)
            state.write(b"corrupt!")
        fallback = await launch(vm_backend, code_dir, workspace, key)
        sessions.append(fallback)
        assert not fallback.instance.initialised
        assert counters.vm_restore_failures == failures + 1
        assert "random" in await fallback.output({}, timeout_s=60)

        # another function version (a code change gives another Init key): no restore
        await vm_backend.wait_for_snapshots()
        changed = await launch(vm_backend, code_dir, workspace, uuid.uuid4().hex)
        sessions.append(changed)
        assert not changed.instance.initialised
    finally:
        await asyncio.gather(first.instance.kill(), *(s.instance.kill() for s in sessions))
