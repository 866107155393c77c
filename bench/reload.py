"""A code-only update (hot reload) against a config update (a new instance), per backend.

`python -m bench.reload [--backends container,gvisor] [--rounds 20] [--modules 0]`

For each backend one daemon runs a warm Python function; every round then times, end to end
over HTTP:
  reload   PATCH new code, then the first invoke that answers with it: the instance drains its
           worker, the daemon replaces the instance's code dir, a fresh worker starts on it;
  replace  PATCH the same kind of new code and memory_mb changed by 1 MB (a config change), then
           the first invoke: a cold start of a new instance (on containers a standby claim
           when one is ready, as in production).
Both PATCHes carry the same code (store write, code cache), so the difference is the reload's
gain. ``--modules N`` adds N imported modules to the code (a bigger tree to replace and import).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from bench import servers
from bench.run import percentiles

console = Console(stderr=True)


def _files(version: int, modules: int) -> dict[str, str]:
    imports = "".join(f"import mod{index}\n" for index in range(modules))
    files = {
        "handler.py": imports
        + f"def handler(event, context):\n    return {{'version': {version}}}\n"
    }
    for index in range(modules):
        files[f"mod{index}.py"] = f"VALUE = {version}\n" + "def f(x):\n    return x\n" * 20
    return files


def _timed_update(
    api: httpx.Client, change: dict[str, Any], version: int
) -> tuple[float, float, bool]:
    """(ms for PATCH + first invoke, ms for the invoke alone, whether it was a cold start)."""
    started = time.perf_counter()
    api.patch("/functions/fn", json=change).raise_for_status()
    invoked = time.perf_counter()
    result = api.post("/functions/fn/invoke", json={}).json()
    done = time.perf_counter()
    if result["error"] or result["output"] != {"version": version}:
        raise RuntimeError(f"expected version {version}, got {result}")
    return (done - started) * 1000, (done - invoked) * 1000, result["cold_start"]


def measure(backend: str, rounds: int, modules: int, memory_mb: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="nova-bench-reload-") as data_dir:
        process, port = servers.start_nova(Path(data_dir), backend)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as api:
                if api.get("/runtimes").json()["backend"] != backend:
                    return {"skipped": "the daemon chose another backend"}
                body = {
                    "name": "fn",
                    "runtime": "python",
                    "files": _files(0, modules),
                    "memory_mb": memory_mb,
                }
                api.post("/functions", json=body).raise_for_status()
                api.post("/functions/fn/invoke", json={}).raise_for_status()
                reload_total, reload_invoke, replace_total, replace_invoke = [], [], [], []
                cold_reloads = 0
                memory = memory_mb
                for index in range(1, rounds + 1):
                    console.print(f"[dim]{backend}: round {index}/{rounds}[/]", end="\r")
                    version = 2 * index
                    total, first, cold = _timed_update(
                        api, {"files": _files(version, modules)}, version
                    )
                    reload_total.append(total)
                    reload_invoke.append(first)
                    cold_reloads += cold
                    memory = memory_mb + 1 if memory == memory_mb else memory_mb
                    change = {"files": _files(version + 1, modules), "memory_mb": memory}
                    total, first, cold = _timed_update(api, change, version + 1)
                    if not cold:
                        raise RuntimeError("a config change must start a new instance")
                    replace_total.append(total)
                    replace_invoke.append(first)
        finally:
            servers.stop(process)
    return {
        "reload_ms": percentiles(reload_total),
        "reload_first_invoke_ms": percentiles(reload_invoke),
        "reloads_that_cold_started": cold_reloads,
        "replace_ms": percentiles(replace_total),
        "replace_first_invoke_ms": percentiles(replace_invoke),
    }


def render(results: dict[str, dict[str, Any]], modules: int) -> None:
    table = Table(title=f"Code update → first answer on it (ms; {modules} extra modules)")
    for column in ("backend", "what", "p50", "p95", "first invoke p50"):
        table.add_column(column, justify="left" if column in ("backend", "what") else "right")
    for backend, result in results.items():
        if "skipped" in result:
            table.add_row(backend, result["skipped"], "-", "-", "-")
            continue
        for label, total, first in (
            ("hot reload (code only)", "reload_ms", "reload_first_invoke_ms"),
            ("new instance (config)", "replace_ms", "replace_first_invoke_ms"),
        ):
            table.add_row(
                backend,
                label,
                f"{result[total]['p50']:.1f}",
                f"{result[total]['p95']:.1f}",
                f"{result[first]['p50']:.1f}",
            )
    Console().print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backends", default="container,gvisor")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--modules", type=int, default=0)
    parser.add_argument("--memory", type=int, default=128, help="memory_mb (sets the CPU share)")
    args = parser.parse_args(argv)
    results = {
        backend: measure(backend, args.rounds, args.modules, args.memory)
        for backend in args.backends.split(",")
    }
    render(results, args.modules)
    for backend, result in results.items():
        if result.get("reloads_that_cold_started"):
            console.print(f"[yellow]{backend}: {result['reloads_that_cold_started']} cold[/]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
