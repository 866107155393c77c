"""MicroVM instances end to end at the backend level: boot, Init, invoke (the Python
function's isolation: test_microvm_escape)."""

from __future__ import annotations

import textwrap
import uuid
from pathlib import Path

import pytest

from nova.images.manifest import ImageManifest
from nova.sandbox.base import InstanceSpec
from nova.sandbox.microvm.backend import MicrovmBackend
from tests.escape.conftest import INTERPRETERS, AgentSession

# The session fixtures build runtime images and boot QEMU under TCG: minutes on a cold host.
pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(600)]

NODE = "exports.handler = async (event) => ({ node: process.version, echo: event });\n"


async def start(
    backend: MicrovmBackend,
    workspace: Path,
    files: dict[str, str],
    *,
    runtime: str = "python",
    handler: str = "handler.handler",
    memory_mb: int = 128,
    network: bool = False,
) -> AgentSession:
    code_dir = workspace / uuid.uuid4().hex[:8]
    code_dir.mkdir()
    for name, text in files.items():
        (code_dir / name).write_text(textwrap.dedent(text))
    instance_id = f"vm-{uuid.uuid4().hex[:10]}"
    spec = InstanceSpec(
        instance_id=instance_id,
        function_name="vmtest",
        runtime=runtime,
        interpreter=INTERPRETERS[runtime],
        code_dir=code_dir,
        work_dir=workspace / "instances" / instance_id,
        memory_mb=memory_mb,
        timeout_s=20,
        network=network,
    )
    session = AgentSession(await backend.start(spec))
    reply = await session.request({**_init(session, runtime, handler, memory_mb)}, timeout_s=90)
    assert reply.get("ok"), reply
    return session


def _init(session: AgentSession, runtime: str, handler: str, memory_mb: int) -> dict:
    from nova.agent.protocol import PROTOCOL_VERSION, MsgType

    return {
        "type": MsgType.INIT,
        "protocol": PROTOCOL_VERSION,
        "runtime": runtime,
        "handler": handler,
        "mode": "persistent",
        "code_dir": session.instance.code_dir,
        "tmp_dir": session.instance.tmp_dir,
        "interpreter": INTERPRETERS[runtime],
        "env": {},
        "function_name": "vmtest",
        "function_version": "1",
        "memory_mb": memory_mb,
        "timeout_s": 20,
        "concurrency": 1,
    }


async def test_node_function(
    vm_backend: MicrovmBackend, workspace: Path, node_image: ImageManifest
) -> None:
    session = await start(
        vm_backend, workspace, {"index.js": NODE}, runtime="node", handler="index.handler"
    )
    try:
        out = await session.output({"x": 1}, timeout_s=60)
        assert out["echo"] == {"x": 1}
        assert out["node"].startswith("v")
    finally:
        await session.instance.kill()
