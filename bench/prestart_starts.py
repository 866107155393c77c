"""Node and Ruby cold starts over HTTP: the normal way (a standby sandbox, then the runtime
starts and loads the function) next to a pre-started runtime (sandbox and runtime up, Init only
loads the function), measured in the same run on the same daemon.

``python -m bench.prestart_starts [--starts 100]`` on its own, or from ``make bench`` (run.py)
on the container backend. Each sample scales the function to zero, waits until its instance is
gone and (for the pre-started one) its pool has an instance waiting, lets the teardown settle,
then times one invoke. The normal function's environment has ``NODE_BENCH`` (``RUBY_BENCH``)
set: a function with a variable its runtime reads at start-up is never given a pre-started
runtime, so it starts the normal way on the same daemon.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
from rich.table import Table

from bench.snapshot_starts import EVENT, SETTLE_S, percentiles, run_alone

NODE = {"handler": "index.handler", "code": "exports.handler = async (event) => ({ event });\n"}
RUBY = {"files": {"handler.rb": "def handler(event:, context:)\n  { event: event }\nend\n"}}
# runtime -> (its function's body, an env variable that keeps a function off the pools)
RUNTIMES = {"node": (NODE, "NODE_BENCH"), "ruby": (RUBY, "RUBY_BENCH")}


def measure(api: httpx.Client, starts: int) -> dict[str, Any]:
    """Cold starts of 128 MB Node and Ruby functions, the normal way and pre-started."""
    result = {}
    for runtime, (body, keep_off) in RUNTIMES.items():
        normal, pre = f"{runtime}-normal", f"{runtime}-prestarted"
        api.post(
            "/functions", json={"name": normal, "runtime": runtime, **body, "env": {keep_off: "1"}}
        ).raise_for_status()
        api.post("/functions", json={"name": pre, "runtime": runtime, **body}).raise_for_status()
        api.post(f"/functions/{pre}/invoke", content=EVENT)  # a miss: its pool fills
        for name, kind in ((normal, "cold"), (pre, "prestarted")):
            samples = []
            for _ in range(starts):
                api.delete(f"/functions/{name}/instances").raise_for_status()
                _wait_idle(api, name, runtime if kind == "prestarted" else None)
                started = time.perf_counter()
                answer = api.post(f"/functions/{name}/invoke", content=EVENT).json()
                samples.append((time.perf_counter() - started) * 1000)
                if answer["start"] != kind or answer["error"]:
                    raise RuntimeError(f"expected a {kind} start of {name}, got {answer}")
            result[f"{name.replace('-', '_')}_cold_ms"] = percentiles(samples)
            api.delete(f"/functions/{name}").raise_for_status()
    return result


def _wait_idle(api: httpx.Client, name: str, pool: str | None) -> None:
    """Until the instance is gone and (``pool``: a runtime) a runtime of it is waiting."""
    deadline = time.monotonic() + 30
    while True:
        gone = not api.get(f"/functions/{name}/instances").json()["items"]
        items = api.get("/snapshots").json()["items"]
        waiting = pool is None or any(
            s["kind"] == "prestarted" and s["forked_ahead"] and pool in s["detail"] for s in items
        )
        if gone and waiting:
            time.sleep(SETTLE_S)
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name}: the instance did not go, or no runtime was pre-started")
        time.sleep(0.005)


def rows(table: Table, backend: str, result: dict[str, Any]) -> None:
    """make bench's rows: Node and Ruby cold starts, the normal way and pre-started."""
    for runtime in RUNTIMES:
        if f"{runtime}_prestarted_cold_ms" not in result:
            continue
        normal = result[f"{runtime}_normal_cold_ms"]
        pre = result[f"{runtime}_prestarted_cold_ms"]
        for label, row, note in (
            (f"{runtime} cold start", normal, f"standby sandbox, {runtime} starts"),
            (f"{runtime} pre-started", pre, f"{normal['p50'] / pre['p50']:.1f}x faster at p50"),
        ):
            table.add_row(
                f"{backend}: {label}",
                f"{row['p50']:.1f}",
                f"{row['p95']:.1f}",
                f"{row['p99']:.1f}",
                "-",
                note,
            )


def main(argv: list[str] | None = None) -> int:
    return run_alone(measure, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
