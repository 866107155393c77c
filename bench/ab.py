"""`python -m bench.ab --before DIR`: warm latency of two source trees, alternating, in one run.

This machine is noisy (a PVM guest whose speed drifts by 1.5x over an hour), so a change is
judged by interleaving it with the code before it rather than against a number measured
earlier. Give it the ``src`` directory of another checkout, e.g.::

    git worktree add ../nova-before HEAD~3
    .venv/bin/python -m bench.ab --before ../nova-before/src --rounds 3

Each round starts a daemon per tree and backend (``PYTHONPATH`` selects the tree; the agent
inside sandboxes is staged from the same tree), times sequential keep-alive invokes of the
Python hello exactly as `make bench` does (p50 and p99), then drives it with wrk at 16
connections (as `make bench` does, ``max_replicas`` 4), and reads from /proc how much CPU the daemon and the
sandbox side (agents, workers) spent per call in each phase. Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from bench import client, servers
from bench.run import EVENT, HELLO_FUNCTION

console = Console(stderr=True)
_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, stack = [], list(children.get(pid, []))
    while stack:
        child = stack.pop()
        found.append(child)
        stack += children.get(child, [])
    return found


class CpuMeter:
    """CPU seconds spent since the last read by the daemon, by its invocation-log writer process
    and by its sandbox side (every other descendant: agents, workers)."""

    def __init__(self, daemon_pid: int) -> None:
        self._pid = daemon_pid
        self._last = self._read()

    def _read(self) -> tuple[float, float, float]:
        writer = sandbox = 0.0
        for pid in descendants(self._pid):
            if _is_log_writer(pid):
                writer += cpu_seconds(pid)
            else:
                sandbox += cpu_seconds(pid)
        return cpu_seconds(self._pid), writer, sandbox

    def per_call_us(self, calls: int) -> tuple[float, float, float]:
        """(daemon, log writer, sandbox) CPU µs per call since the last read."""
        now = self._read()
        spent = [
            round((after - before) / calls * 1e6, 1)
            for after, before in zip(now, self._last, strict=True)
        ]
        self._last = now
        return spent[0], spent[1], spent[2]


def _is_log_writer(pid: int) -> bool:
    try:
        return b"sqlite_log_writer" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def measure(
    tree: Path, backend: str, requests: int, seconds: int, env: dict[str, str] | None = None
) -> dict[str, float | None]:
    environment = {"PYTHONPATH": str(tree.resolve()), **(env or {})}
    with tempfile.TemporaryDirectory(prefix="nova-ab-") as data_dir:
        process, port = servers.start_nova(Path(data_dir), backend, environment, auth=True)
        try:
            api = f"http://127.0.0.1:{port}/functions"
            headers = servers.admin_headers(Path(data_dir))  # none for a tree without keys
            httpx.post(api, json=HELLO_FUNCTION, headers=headers).raise_for_status()
            path = "/functions/hello/invoke"
            client.sequential_latencies_ms(port, path, EVENT, 300, 0, headers)  # start + warm up
            meter = CpuMeter(process.pid)
            samples = client.sequential_latencies_ms(port, path, EVENT, requests, 0, headers)
            daemon_us, writer_us, sandbox_us = meter.per_call_us(requests)
            rps = loaded_daemon_us = loaded_writer_us = None
            if seconds and client.wrk_available():
                meter = CpuMeter(process.pid)  # after the latency run: its instance is warm
                rps = client.wrk_requests_per_second(port, path, EVENT, 16, seconds, headers)
                calls = round(rps * seconds)
                loaded_daemon_us, loaded_writer_us, _ = meter.per_call_us(calls)
        finally:
            servers.stop(process)
    return {
        "p50_ms": round(statistics.median(samples), 4),
        "p99_ms": round(sorted(samples)[int(0.99 * len(samples))], 4),
        "daemon_cpu_us": daemon_us,
        "log_writer_cpu_us": writer_us,
        "sandbox_cpu_us": sandbox_us,
        "rps_16": rps,
        "loaded_daemon_cpu_us": loaded_daemon_us,
        "loaded_log_writer_cpu_us": loaded_writer_us,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", type=Path, required=True, help="src/ of the other checkout")
    parser.add_argument("--after", type=Path, default=Path("src"))
    parser.add_argument("--backends", default="process,container")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--seconds", type=int, default=5, help="wrk run per tree; 0 skips it")
    parser.add_argument("--out", type=Path, default=Path("bench/ab.json"))
    parser.add_argument(
        "--after-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for the after tree's daemon only (repeatable): compare "
        "a setting on and off, e.g. --before src --after-env NOVA_RATE_LIMITS__ENABLED=true",
    )
    args = parser.parse_args()
    after_env = dict(item.split("=", 1) for item in args.after_env)
    trees = {"before": args.before, "after": args.after}
    for label, tree in trees.items():
        if not (tree / "nova" / "__init__.py").is_file():
            parser.error(f"--{label} {tree} is not a src/ directory holding the nova package")
    results: list[dict[str, Any]] = []
    for round_number in range(1, args.rounds + 1):
        for label, tree in trees.items():
            for backend in args.backends.split(","):
                console.print(f"[dim]round {round_number}: {label} on {backend} …[/]")
                env = after_env if label == "after" else None
                row = measure(tree, backend, args.requests, args.seconds, env)
                results.append({"round": round_number, "tree": label, "backend": backend, **row})
    table = Table(title="warm invoke, before vs after (alternating runs; CPU per call)")
    for column in (
        "round",
        "tree",
        "backend",
        "p50 ms",
        "p99 ms",
        "daemon µs",
        "sandbox µs",
        "req/s @16",
        "daemon µs @16",
        "log writer µs @16",
    ):
        table.add_column(column, justify="right")
    for row in results:
        table.add_row(
            str(row["round"]),
            str(row["tree"]),
            str(row["backend"]),
            f"{row['p50_ms']:.3f}",
            f"{row['p99_ms']:.3f}",
            f"{row['daemon_cpu_us']:.0f}",
            f"{row['sandbox_cpu_us']:.0f}",
            f"{row['rps_16']:,.0f}" if row["rps_16"] else "-",
            f"{row['loaded_daemon_cpu_us']:.0f}" if row["loaded_daemon_cpu_us"] else "-",
            f"{row['loaded_log_writer_cpu_us']:.0f}" if row["rps_16"] else "-",
        )
    Console().print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"trees": {k: str(v) for k, v in trees.items()}, "runs": results}, indent=2)
    )
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
