"""The price of observability on a warm invoke (a `make bench` section; alone:
``python -m bench.observability [--rounds 2]``).

Four daemons per round on the process backend, alternating so the host's drift spreads evenly:
per-invocation metrics off; metrics on (the default); metrics and tracing at sampling 0; metrics
and tracing at sampling 1, exporting to a local OTLP receiver that discards what it gets. Each
is timed as `bench.ab` times a tree: sequential keep-alive invokes of the Python hello (p50,
p99) and the daemon's CPU per call from /proc.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench import ab
from bench.otlp_sink import DiscardingReceiver

console = Console(stderr=True)
SRC = Path(__file__).resolve().parents[1] / "src"


def configurations(receiver_url: str) -> dict[str, dict[str, str]]:
    tracing = {"NOVA_TRACING__ENABLED": "true", "NOVA_TRACING__OTLP_ENDPOINT": receiver_url}
    return {
        "metrics off": {"NOVA_METRICS__ENABLED": "false"},
        "metrics on": {},
        "metrics + tracing at 0": {**tracing, "NOVA_TRACING__SAMPLING_RATIO": "0"},
        "metrics + tracing at 1": {**tracing, "NOVA_TRACING__SAMPLING_RATIO": "1"},
    }


def measure(requests: int, rounds: int) -> list[dict[str, Any]]:
    receiver = DiscardingReceiver()
    runs: list[dict[str, Any]] = []
    try:
        for round_number in range(1, rounds + 1):
            for label, env in configurations(receiver.url).items():
                console.print(f"[dim]observability, round {round_number}: {label} …[/]")
                row = ab.measure(SRC, "process", requests, 0, env)
                runs.append({"round": round_number, "config": label, **row})
    finally:
        receiver.close()
    return summarise(runs)


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for label in dict.fromkeys(run["config"] for run in runs):
        mine = [run for run in runs if run["config"] == label]
        rows.append(
            {
                "config": label,
                "rounds": len(mine),
                "p50_ms": statistics.median(run["p50_ms"] for run in mine),
                "p99_ms": statistics.median(run["p99_ms"] for run in mine),
                "daemon_cpu_us": statistics.median(run["daemon_cpu_us"] for run in mine),
            }
        )
    return rows


def render(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="Observability on a warm invoke (process backend; medians of the rounds)")
    for column in ("config", "p50 ms", "p99 ms", "daemon µs/call", "vs metrics off"):
        table.add_column(column, justify="left" if column == "config" else "right")
    base = rows[0]["daemon_cpu_us"] if rows else None
    for row in rows:
        share = f"{row['daemon_cpu_us'] / base - 1:+.1%}" if base else "-"
        table.add_row(
            row["config"],
            f"{row['p50_ms']:.3f}",
            f"{row['p99_ms']:.3f}",
            f"{row['daemon_cpu_us']:.0f}",
            share,
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    Console().print(render(measure(args.requests, args.rounds)))


if __name__ == "__main__":
    main()
