"""Cold starts from a function snapshot (a fork of the function's template) over HTTP, next to
what they replace and what they are made of, measured in the same run.

``python -m bench.snapshot_starts [--starts 100]`` on its own, or from ``make bench`` (run.py)
on the container backend. Each snapshot sample scales the function to zero
(``DELETE /functions/{name}/instances``), waits until its instance is gone, then times one
invoke: the start forks the template. Baselines: a bare ``os.fork`` answering over a pipe, and
a bare fork that unshares mount/pid/net/ipc/uts namespaces first (as each snapshot start does),
both from this process.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench import servers

SNAPPED = {
    "name": "snapped",
    "runtime": "python",
    "code": "import json, random\n\ndef handler(event, context):\n    return {'ok': random.random()}\n",
    "memory_mb": 128,
}
EVENT = b'{"name":"bench"}'
NAMESPACES = 0x00020000 | 0x20000000 | 0x40000000 | 0x08000000 | 0x04000000  # mnt pid net ipc uts


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "n": len(ordered)}


def measure(api: httpx.Client, starts: int) -> dict[str, Any]:
    """Snapshot cold starts of a 128 MB Python function, with the template's idle memory."""
    api.post("/functions", json=SNAPPED).raise_for_status()
    snapshot = api.post("/functions/snapped/snapshot").json()
    samples: list[float] = []
    phases: list[float] = []
    for _ in range(starts):
        api.delete("/functions/snapped/instances").raise_for_status()
        _wait_no_instances(api)
        started = time.perf_counter()
        result = api.post("/functions/snapped/invoke", content=EVENT).json()
        samples.append((time.perf_counter() - started) * 1000)
        if result["start"] != "snapshot" or result["error"]:
            raise RuntimeError(f"expected a snapshot start, got {result}")
        phases.append(result["phases"]["sandbox_ms"])
    listed = [s for s in api.get("/snapshots").json()["items"] if s["id"] == snapshot["id"]]
    api.delete("/functions/snapped").raise_for_status()
    return {
        "snapshot_cold_ms": percentiles(samples),
        "snapshot_fork_ms": percentiles(phases),  # the daemon's part: fork to "go"
        "template_idle_bytes": listed[0]["size_bytes"] if listed else None,
        "bare_fork_pipe_ms": percentiles(_bare_fork(starts, unshare=False)),
        "bare_unshare_fork_ms": percentiles(_bare_fork(starts, unshare=True)),
    }


def _wait_no_instances(api: httpx.Client) -> None:
    deadline = time.monotonic() + 10
    while api.get("/functions/snapped/instances").json()["items"]:
        if time.monotonic() > deadline:
            raise RuntimeError("the scaled-down instance did not go")
        time.sleep(0.002)


def _bare_fork(count: int, *, unshare: bool) -> list[float]:
    """fork, the child answers one byte over a pipe; with ``unshare`` the child first makes
    the namespaces a snapshot start makes, and its own child (pid 1 there) answers."""
    libc = ctypes.CDLL(None, use_errno=True)
    samples = []
    for _ in range(count):
        read_end, write_end = os.pipe()
        started = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            if unshare:
                if libc.unshare(NAMESPACES) != 0:
                    os._exit(1)
                inner = os.fork()
                if inner:
                    os.waitpid(inner, 0)
                    os._exit(0)
            os.write(write_end, b"x")
            os._exit(0)
        os.read(read_end, 1)
        samples.append((time.perf_counter() - started) * 1000)
        os.waitpid(pid, 0)
        os.close(read_end)
        os.close(write_end)
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--starts", type=int, default=100)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="nova-bench-") as data_dir:
        process, port = servers.start_nova(Path(data_dir), "container")
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as api:
                report = measure(api, args.starts)
        finally:
            servers.stop(process)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
