"""The microvm backend's start-up and warm latency, at the backend (no HTTP, no pool).

``python -m bench.microvm [--samples 5] [--warm 200] [--cache DIR]``; ``make bench`` runs it
with ``bench.run --microvm N``. Three rows:

  boot     a fresh VM: QEMU starts, the guest kernel boots, /init mounts the drives, the agent
           starts, Init loads the handler, the first invoke answers (snapshots off);
  restore  a VM restored from the snapshot saved after Init: QEMU maps the snapshot's RAM
           copy-on-write, loads the device state, the agent takes the host's clock and RNG
           seed (Resume), the first invoke answers;
  warm     sequential invokes of one running VM over its agent channel.

The runtime image (debootstrap, ~40 s once) and the guest's drives are cached in ``--cache``
(``images/`` and ``microvm/``, the layout the tests' NOVA_TEST_IMAGES_DIR uses).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from nova.agent.protocol import (
    HEADER,
    PROTOCOL_VERSION,
    MsgType,
    decode_body,
    encode_frame,
    exec_body,
)
from nova.core.errors import NovaError
from nova.images.debootstrap import DebootstrapBuilder, host_mirror, host_suite
from nova.images.recipe import ImagePolicy, debian_recipes
from nova.images.service import ImageService
from nova.images.store import ImageStore
from nova.sandbox.base import InstanceSpec, SandboxInstance, SnapshottingInstance
from nova.sandbox.container.roots import image_mount_points
from nova.sandbox.microvm.backend import MicrovmBackend
from nova.sandbox.microvm.layout import MicrovmOptions

HELLO = "def handler(event, context=None):\n    return {'message': 'hello'}\n"
INTERPRETER = "/usr/bin/python3"
MEMORY_MB = 128
console = Console(stderr=True)


async def _request(instance: SandboxInstance, body: bytes) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(instance.sock, encode_frame(body))
    (length,) = HEADER.unpack(await _read(instance, HEADER.size))
    return decode_body(await _read(instance, length))


async def _read(instance: SandboxInstance, size: int) -> bytes:
    loop = asyncio.get_running_loop()
    data = b""
    while len(data) < size:
        chunk = await loop.sock_recv(instance.sock, size - len(data))
        if not chunk:
            raise ConnectionError("the agent closed the connection")
        data += chunk
    return data


async def _invoke(instance: SandboxInstance, number: int) -> None:
    deadline_ms = int((time.time() + 60) * 1000)
    body = exec_body(str(number), f"bench-{number}", deadline_ms, None, b"{}")
    reply = await _request(instance, body)
    if not reply.get("ok") or reply.get("error"):
        raise RuntimeError(f"invoke failed: {reply}")


async def _start(
    backend: MicrovmBackend, work: Path, code: Path, init_key: str | None
) -> tuple[SandboxInstance, float]:
    """Start, Init unless restored, first invoke: the instance and the milliseconds it took."""
    instance_id = f"bench-{uuid.uuid4().hex[:8]}"
    spec = InstanceSpec(
        instance_id=instance_id,
        function_name="bench",
        runtime="python",
        interpreter=INTERPRETER,
        code_dir=code,
        work_dir=work / instance_id,
        memory_mb=MEMORY_MB,
        timeout_s=60,
        network=False,
        init_key=init_key,
    )
    started = time.perf_counter()
    instance = await backend.start(spec)
    assert isinstance(instance, SnapshottingInstance)
    if not instance.initialised:
        init = {
            "type": MsgType.INIT,
            "id": "init",
            "protocol": PROTOCOL_VERSION,
            "runtime": "python",
            "handler": "handler.handler",
            "mode": "persistent",
            "code_dir": instance.code_dir,
            "tmp_dir": instance.tmp_dir,
            "interpreter": INTERPRETER,
            "env": {},
            "function_name": "bench",
            "function_version": "1",
            "memory_mb": MEMORY_MB,
            "timeout_s": 60,
            "concurrency": 1,
        }
        reply = await _request(instance, json.dumps(init).encode())
        if not reply.get("ok"):
            raise RuntimeError(f"Init failed: {reply}")
    await _invoke(instance, 1)
    elapsed_ms = (time.perf_counter() - started) * 1000
    if init_key is not None and not instance.initialised:
        await instance.save_snapshot()
    return instance, elapsed_ms


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {"p50": at(0.50), "p95": at(0.95), "n": len(ordered)}


async def measure(samples: int, warm: int, cache: Path) -> dict[str, Any]:
    info = MicrovmBackend.probe()
    if not info.available:
        return {"skipped": info.reason}
    suite = host_suite()
    store = ImageStore(
        cache / "images",
        debian_recipes(suite, image_mount_points()),
        DebootstrapBuilder(host_mirror(suite)),
    )
    console.print("[dim]microvm: the python image (debootstrap once, then cached) …[/]")
    try:
        await asyncio.to_thread(store.build, "python")
    except NovaError as exc:
        return {"skipped": f"no python image: {exc.message}"}
    backend = MicrovmBackend(
        MicrovmOptions(cache / "microvm"), ImageService(store, ImagePolicy(), None)
    )
    work = Path(tempfile.mkdtemp(prefix="nova-bench-vm-"))
    code = work / "code"
    code.mkdir()
    (code / "handler.py").write_text(HELLO)
    try:
        boots, restores, warm_ms = [], [], []
        console.print(f"[dim]microvm ({backend.accel.name}): {samples} boots …[/]")
        for _ in range(samples):
            instance, elapsed = await _start(backend, work, code, None)
            boots.append(elapsed)
            await instance.kill()
        key = uuid.uuid4().hex  # a fresh function version: the first start boots and saves
        first, _ = await _start(backend, work, code, key)
        await backend.wait_for_snapshots()
        console.print(f"[dim]microvm: {warm} warm invokes …[/]")
        for number in range(warm):
            started = time.perf_counter()
            await _invoke(first, number + 2)
            warm_ms.append((time.perf_counter() - started) * 1000)
        await first.kill()
        console.print(f"[dim]microvm: {samples} restores …[/]")
        for _ in range(samples):
            instance, elapsed = await _start(backend, work, code, key)
            if not instance.initialised:
                raise RuntimeError("the start booted: no snapshot was restored")
            restores.append(elapsed)
            await instance.kill()
        return {
            "accel": backend.accel.reason,
            "boot_to_first_reply_ms": percentiles(boots),
            "restore_to_first_reply_ms": percentiles(restores),
            "warm_invoke_ms": percentiles(warm_ms),
        }
    finally:
        await backend.close()
        for snapshot in backend.snapshots.directories():
            if snapshot.name.startswith("bench-"):
                shutil.rmtree(snapshot, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


def rows(table: Table, result: dict[str, Any]) -> None:
    """The microvm rows of ``bench.run``'s table (what, p50, p95, p99, req/s, vs baseline)."""
    if "skipped" in result:
        table.add_row("microvm", "-", "-", "-", "-", result["skipped"])
        return
    for what, name in (
        ("boot to first reply", "boot_to_first_reply_ms"),
        ("restore to first reply", "restore_to_first_reply_ms"),
        ("warm invoke (agent channel)", "warm_invoke_ms"),
    ):
        values = result[name]
        table.add_row(
            f"microvm: {what}",
            f"{values['p50']:.1f}",
            f"{values['p95']:.1f}",
            "-",
            "-",
            f"n={values['n']}, {result['accel'].split(':')[0]}",
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--warm", type=int, default=200)
    parser.add_argument("--cache", type=Path, default=Path("/var/tmp/nova-bench-vm"))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    result = asyncio.run(measure(args.samples, args.warm, args.cache))
    table = Table(title="microvm backend (ms)")
    for column in ("what", "p50", "p95", "p99", "req/s", "notes"):
        table.add_column(column, justify="right" if column != "what" else "left")
    rows(table, result)
    Console().print(table)
    if "accel" in result:
        console.print(f"accelerator: {result['accel']}")
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
