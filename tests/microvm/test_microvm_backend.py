"""MicroVM instances end to end at the backend level: boot, Init, invoke, isolation, kill."""

from __future__ import annotations

import textwrap
import uuid
from pathlib import Path

import pytest

from nova.images.manifest import ImageManifest
from nova.sandbox.base import InstanceSpec
from nova.sandbox.microvm.backend import MicrovmBackend
from tests.escape.conftest import INTERPRETERS, AgentSession

pytestmark = pytest.mark.asyncio(loop_scope="session")

PROBE = """
import os, socket, time

def handler(event, context=None):
    if event.get("op") == "fill_tmp":
        written = 0
        try:
            with open("/tmp/fill", "wb") as f:
                while True:
                    f.write(b"x" * (1 << 20))
                    written += 1
        except OSError as exc:
            return {"written_mb": written, "error": exc.strerror}
    if event.get("op") == "hog":
        return len(bytearray(event["mb"] * 1024 * 1024))
    try:
        socket.create_connection(("10.0.2.2", 80), timeout=1).close()
        net = "connected"
    except OSError as exc:
        net = type(exc).__name__
    return {
        "pid": os.getpid(),
        "kernel": open("/proc/version").read(),
        "interfaces": sorted(name for _, name in socket.if_nameindex()),
        "host_marker": os.path.exists(event.get("marker", "/nonexistent")),
        "root_writable": os.access("/usr", os.W_OK) and _try_write("/usr/x"),
        "code": sorted(os.listdir("/code")),
        "net": net,
    }

def _try_write(path):
    try:
        open(path, "w").close()
        return True
    except OSError:
        return False
"""

NODE = "exports.handler = async (event) => ({ node: process.version, echo: event });\n"


async def start(
    backend: MicrovmBackend,
    workspace: Path,
    files: dict[str, str],
    *,
    runtime: str = "python",
    handler: str = "handler.handler",
    memory_mb: int = 128,
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
        network=False,
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


async def test_python_function_in_its_own_kernel(
    vm_backend: MicrovmBackend, workspace: Path
) -> None:
    marker = Path("/tmp") / f"nova-host-marker-{uuid.uuid4().hex[:8]}"
    marker.write_text("host only")
    session = await start(vm_backend, workspace, {"handler.py": PROBE})
    try:
        assert session.instance.pid is not None
        out = await session.output({"marker": str(marker)}, timeout_s=60)
        assert "cloud-amd64" in out["kernel"]  # the guest kernel, not the host's
        assert out["host_marker"] is False  # host files do not exist in the guest
        assert out["root_writable"] is False  # the rootfs drive is read-only
        assert out["code"] == ["handler.py"]
        assert out["interfaces"] == ["lo"]  # no network device at all
        assert out["net"] != "connected"
        tmp = await session.output({"op": "fill_tmp"}, timeout_s=60)
        assert tmp["error"] == "No space left on device"
        assert tmp["written_mb"] <= 64  # /tmp is capped at half of memory_mb
        # a memory bomb fails the invocation; the VM and its agent survive it
        hog = await session.exec({"op": "hog", "mb": 1024}, timeout_s=90)
        assert hog.get("error") is not None, hog
        assert await session.output({"op": "hog", "mb": 4}, timeout_s=60) == 4 << 20
    finally:
        marker.unlink()
        await session.instance.kill()
    assert not session.instance.alive()
    assert not (workspace / "instances" / session.instance.instance_id).exists()


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
