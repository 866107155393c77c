"""Cold starts from a function snapshot (a fork of the function's template) over HTTP, next to
what they replace and what they are made of, measured in the same run.

``python -m bench.snapshot_starts [--starts 100]`` on its own, or from ``make bench`` (run.py)
on the container backend. Each snapshot sample scales the function to zero
(``DELETE /functions/{name}/instances``), waits until its instance is gone and the template has
forked its next instance ahead (``forked_ahead`` in GET /snapshots), lets the old instance's
teardown settle (100 ms), then times one invoke. Baselines: a bare ``os.fork`` answering over a pipe, and
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from rich.table import Table

from bench import servers

SNAPPED = {
    "name": "snapped",
    "runtime": "python",
    "code": "import json, random\n\ndef handler(event, context):\n    return {'ok': random.random()}\n",
    "memory_mb": 128,
}
EVENT = b'{"name":"bench"}'
SETTLE_S = 0.1
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
        _wait_idle(api, snapshot["id"])
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


def _wait_idle(api: httpx.Client, snapshot_id: str) -> None:
    """Until the scaled-down instance is gone and the snapshot has forked its next instance
    ahead: the state a function is in after scale to zero, or idle long enough."""
    deadline = time.monotonic() + 10
    while True:
        gone = not api.get("/functions/snapped/instances").json()["items"]
        snapshots = api.get("/snapshots").json()["items"]
        ready = any(s["id"] == snapshot_id and s["forked_ahead"] for s in snapshots)
        if gone and ready:
            # The kernel tears the old instance's namespaces down after it exits (a network
            # namespace's cleanup runs in a kernel worker for milliseconds): a start after an
            # idle spell does not share the CPUs with that.
            time.sleep(SETTLE_S)
            return
        if time.monotonic() > deadline:
            raise RuntimeError("the scaled-down instance did not go, or nothing was forked ahead")
        time.sleep(0.005)


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


def rows(table: Table, backend: str, result: dict[str, Any]) -> None:
    """make bench's rows: snapshot cold start next to its two bare baselines."""
    if "snapshot_cold_ms" not in result:
        return
    snap, fork = result["snapshot_cold_ms"], result["bare_fork_pipe_ms"]
    ratio = snap["p50"] / fork["p50"] if fork["p50"] else 0.0
    size = result.get("template_idle_bytes") or 0
    table.add_row(
        f"{backend}: snapshot cold start",
        f"{snap['p50']:.1f}",
        f"{snap['p95']:.1f}",
        f"{snap['p99']:.1f}",
        "-",
        f"{ratio:.1f}x bare fork; template idle {size / 2**20:.1f} MiB",
    )
    for key, label in (
        ("bare_fork_pipe_ms", "bare fork + pipe"),
        ("bare_unshare_fork_ms", "bare unshare + fork"),
    ):
        bare = result[key]
        table.add_row(
            label, f"{bare['p50']:.2f}", f"{bare['p95']:.2f}", f"{bare['p99']:.2f}", "-", "baseline"
        )


def run_alone(
    measuring: Callable[[httpx.Client, int], dict[str, Any]],
    description: str | None,
    argv: list[str] | None,
) -> int:
    """Run ``measuring`` against a daemon of its own on the container backend; print JSON."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--starts", type=int, default=100)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="nova-bench-") as data_dir:
        process, port = servers.start_nova(Path(data_dir), "container")
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as api:
                report = measuring(api, args.starts)
        finally:
            servers.stop(process)
    print(json.dumps(report, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_alone(measure, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
