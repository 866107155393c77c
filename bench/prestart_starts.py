"""Node cold starts over HTTP: the normal way (a standby sandbox, then Node starts and loads the
function) next to a pre-started runtime (sandbox and Node up, Init only loads the function),
measured in the same run on the same daemon.

``python -m bench.prestart_starts [--starts 100]`` on its own, or from ``make bench`` (run.py)
on the container backend. Each sample scales the function to zero, waits until its instance is
gone and (for the pre-started one) its pool has an instance waiting, lets the teardown settle,
then times one invoke. The normal function's environment has ``NODE_BENCH`` set: a function
with a ``NODE_*`` variable is never given a pre-started runtime (node reads those at start-up),
so it starts the normal way on the same daemon.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
from rich.table import Table

from bench.snapshot_starts import EVENT, SETTLE_S, percentiles, run_alone

CODE = "let calls = 0;\nexports.handler = async (event) => ({ calls: ++calls, event });\n"


def _function(name: str, env: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "runtime": "node", "handler": "index.handler", "code": CODE, "env": env}


def measure(api: httpx.Client, starts: int) -> dict[str, Any]:
    """Cold starts of a 128 MB Node function, the normal way and from a pre-started runtime."""
    api.post(
        "/functions", json=_function("node-normal", {"NODE_BENCH": "normal"})
    ).raise_for_status()
    api.post("/functions", json=_function("node-prestarted", {})).raise_for_status()
    api.post("/functions/node-prestarted/invoke", content=EVENT)  # a miss: its pool fills
    result = {}
    for name, kind in (("node-normal", "cold"), ("node-prestarted", "prestarted")):
        samples = []
        for _ in range(starts):
            api.delete(f"/functions/{name}/instances").raise_for_status()
            _wait_idle(api, name, kind == "prestarted")
            started = time.perf_counter()
            answer = api.post(f"/functions/{name}/invoke", content=EVENT).json()
            samples.append((time.perf_counter() - started) * 1000)
            if answer["start"] != kind or answer["error"]:
                raise RuntimeError(f"expected a {kind} start of {name}, got {answer}")
        result[f"{name.replace('-', '_')}_cold_ms"] = percentiles(samples)
        api.delete(f"/functions/{name}").raise_for_status()
    return result


def _wait_idle(api: httpx.Client, name: str, pool: bool) -> None:
    deadline = time.monotonic() + 30
    while True:
        gone = not api.get(f"/functions/{name}/instances").json()["items"]
        items = api.get("/snapshots").json()["items"]
        waiting = any(s["kind"] == "prestarted" and s["forked_ahead"] for s in items)
        if gone and (waiting or not pool):
            time.sleep(SETTLE_S)
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name}: the instance did not go, or no runtime was pre-started")
        time.sleep(0.005)


def rows(table: Table, backend: str, result: dict[str, Any]) -> None:
    """make bench's rows: a Node cold start the normal way and from a pre-started runtime."""
    if "node_prestarted_cold_ms" not in result:
        return
    normal, pre = result["node_normal_cold_ms"], result["node_prestarted_cold_ms"]
    for label, row, note in (
        ("node cold start", normal, "standby sandbox, node starts"),
        ("node pre-started start", pre, f"{normal['p50'] / pre['p50']:.1f}x faster at p50"),
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
