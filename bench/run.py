"""`make bench`: Nova against baselines measured in the same run, printed and written as JSON.

Measures, for each sandbox backend asked for:
  warm   sequential keep-alive invokes of a Python hello over HTTP (p50/p95/p99), next to a bare
         uvicorn hello on the same loop and parser, and next to a bare relay (bench/relay_app.py:
         the same uvicorn handing each body to a Python worker process and back - the floor of
         any design that runs the handler outside the HTTP process);
  alias  warm invokes through an alias splitting 90/10 between two versions, in rounds
         alternating with plain ($LATEST) invokes;
  rps    throughput at 16 connections (wrk), next to the same two baselines, then the
         invocations answered so far against the invocation-log records stored (equal);
  compat warm invokes through the Lambda Invoke API and through `provided` bootstraps (Bash, C),
         in rounds alternating with native invokes (bench/compat.py);
  cold   first invoke after create of a 128 MB function (p50/p95), next to spawning a bare
         python3 and a bare fork;
  snap   (container) invokes after scale to zero, each a start from the function's snapshot,
         next to a bare fork + pipe and a bare unshare + fork (bench/snapshot_starts.py);
  async  asynchronous invocation (bench/async_events.py): events accepted per second,
         completed per second, and submit -> finish latency p50/p99;
  triggers messages per second through one queue trigger per broker: NATS JetStream, RabbitMQ,
         Redis Streams (bench/queue_triggers.py; --queue-triggers 0 skips it);
  microvm boot and snapshot restore to first reply (p50/p95) and warm invoke of the microvm
         backend (bench/microvm.py; --microvm 0 skips it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from bench import (
    async_events,
    client,
    compat,
    microvm,
    prestart_starts,
    queue_triggers,
    servers,
    snapshot_starts,
)

HELLO = "def handler(event, context):\n    return {'message': 'Hello, ' + event.get('name', 'world') + '!'}\n"
EVENT = b'{"name":"bench"}'
# The function every warm measurement invokes (make bench, bench.ab, bench.hotpath). 1769 MB is
# one full vCPU of quota (as in Lambda): the numbers measure Nova's overhead, not the 10 % CPU
# share a 128 MB function would be throttled to; 4 replicas serve the 16 wrk connections.
HELLO_FUNCTION = {
    "name": "hello",
    "runtime": "python",
    "code": HELLO,
    "max_replicas": 4,
    "memory_mb": 1769,
}
console = Console(stderr=True)


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 4)

    return {
        "p50": at(0.50),
        "p95": at(0.95),
        "p99": at(0.99),
        "mean": round(statistics.fmean(ordered), 4),
        "n": len(ordered),
    }


def measure_baselines(requests: int, seconds: int) -> dict[str, Any]:
    warm, rps = _measure_app("bench.bare_app:app", "bare uvicorn hello", requests, seconds)
    relay_warm, relay_rps = _measure_app(
        "bench.relay_app:app", "bare relay to a worker process", requests, seconds
    )
    return {
        "warm_ms": warm,
        "rps_16": rps,
        "relay_warm_ms": relay_warm,
        "relay_rps_16": relay_rps,
        "python_spawn_ms": percentiles(_spawn_python(20)),
        "fork_ms": percentiles(_bare_fork(200)),
    }


def _measure_app(
    app: str, label: str, requests: int, seconds: int
) -> tuple[dict[str, float], float | None]:
    process, port = servers.start_bare_uvicorn(app)
    try:
        console.print(f"[dim]baseline: {label} …[/]")
        warm = percentiles(client.sequential_latencies_ms(port, "/", EVENT, requests, warmup=200))
        rps = (
            client.wrk_requests_per_second(port, "/", EVENT, 16, seconds)
            if client.wrk_available()
            else None
        )
    finally:
        servers.stop(process)
    return warm, rps


def _spawn_python(count: int) -> list[float]:
    interpreter = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        subprocess.run([interpreter, "-c", "pass"], check=True)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def _bare_fork(count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def measure_backend(backend: str, requests: int, seconds: int, cold_samples: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="nova-bench-") as data_dir:
        process, port = servers.start_nova(Path(data_dir), backend)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as api:
                runtimes = api.get("/runtimes").json()
                if runtimes["backend"] != backend:
                    return {"skipped": f"daemon chose {runtimes['backend']!r}"}
                api.post("/functions", json=HELLO_FUNCTION).raise_for_status()
                console.print(f"[dim]{backend}: warm latency …[/]")
                warm = percentiles(
                    client.sequential_latencies_ms(
                        port, "/functions/hello/invoke", EVENT, requests, warmup=200
                    )
                )
                console.print(f"[dim]{backend}: warm through a 90/10 alias …[/]")
                routed = _alias_against_plain(api, port, requests)
                console.print(f"[dim]{backend}: warm with authentication on, against off …[/]")
                authenticated = _auth_against_off(backend, port, requests)
                console.print(f"[dim]{backend}: throughput …[/]")
                rps = (
                    client.wrk_requests_per_second(
                        port, "/functions/hello/invoke", EVENT, 16, seconds
                    )
                    if client.wrk_available()
                    else None
                )
                logs = _log_accounting(api, Path(data_dir))
                console.print(f"[dim]{backend}: Lambda Invoke API and provided bootstraps …[/]")
                compatible = {
                    f"{key}_ms": percentiles(values)
                    for key, values in compat.measure(api, port, requests).items()
                }
                console.print(f"[dim]{backend}: cold starts …[/]")
                cold = percentiles(_cold_starts(api, cold_samples))
                snapshots: dict[str, Any] = {}
                if backend == "container":
                    console.print(f"[dim]{backend}: snapshot cold starts …[/]")
                    snapshots = snapshot_starts.measure(api, max(50, cold_samples))
                    console.print(f"[dim]{backend}: node and ruby cold starts, pre-started …[/]")
                    snapshots |= prestart_starts.measure(api, max(50, cold_samples))
        finally:
            servers.stop(process)
    return {
        "warm_ms": warm,
        "rps_16": rps,
        "cold_ms": cold,
        "logs": logs,
        **routed,
        **authenticated,
        **compatible,
        **snapshots,
    }


def _log_accounting(api: httpx.Client, data_dir: Path, timeout_s: float = 60) -> dict[str, Any]:
    """After the throughput run: invocations answered so far against invocation-log records in
    the store, once the daemon says nothing is left to write (they must be equal)."""
    deadline = time.monotonic() + timeout_s
    while True:
        stats = api.get("/stats").json()
        if stats["logs"]["backlog"] == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    with contextlib.closing(sqlite3.connect(data_dir / "nova.db")) as connection:
        (stored,) = connection.execute("SELECT count(*) FROM invocation_logs").fetchone()
    return {"answered": stats["invocations"]["invocations"], "stored": stored, **stats["logs"]}


def _alias_against_plain(api: httpx.Client, port: int, requests: int) -> dict[str, Any]:
    """Warm invokes of hello through an alias splitting 90/10 between two versions, against
    plain ($LATEST) invokes, in alternating rounds so both see the same machine."""
    api.post("/functions/hello/versions", json={}).raise_for_status()
    api.patch("/functions/hello", json={"description": "v2"}).raise_for_status()
    api.post("/functions/hello/versions", json={}).raise_for_status()
    weights = [{"version": 1, "weight": 90}, {"version": 2, "weight": 10}]
    api.put(
        "/functions/hello/aliases/live", json={"routing_config": {"weights": weights}}
    ).raise_for_status()
    plain: list[float] = []
    routed: list[float] = []
    rounds = 6
    for _ in range(rounds):
        plain += client.sequential_latencies_ms(
            port, "/functions/hello/invoke", EVENT, requests // rounds, warmup=50
        )
        routed += client.sequential_latencies_ms(
            port, "/functions/hello:live/invoke", EVENT, requests // rounds, warmup=50
        )
    return {"plain_interleaved_ms": percentiles(plain), "alias_9010_ms": percentiles(routed)}


def _auth_against_off(backend: str, port: int, requests: int) -> dict[str, Any]:
    """Warm invokes of hello on this daemon (authentication off, as every bench daemon) against
    a second daemon with it on (the default: each request carries a key), in alternating
    rounds so both see the same machine."""
    with tempfile.TemporaryDirectory(prefix="nova-bench-auth-") as data_dir:
        process, auth_port = servers.start_nova(Path(data_dir), backend, auth=True)
        try:
            headers = servers.admin_headers(Path(data_dir))
            url = f"http://127.0.0.1:{auth_port}/functions"
            httpx.post(url, json=HELLO_FUNCTION, headers=headers, timeout=60).raise_for_status()
            path = "/functions/hello/invoke"
            off: list[float] = []
            on: list[float] = []
            rounds = 6
            for _ in range(rounds):
                off += client.sequential_latencies_ms(port, path, EVENT, requests // rounds, 50)
                on += client.sequential_latencies_ms(
                    auth_port, path, EVENT, requests // rounds, 50, headers
                )
        finally:
            servers.stop(process)
    return {"auth_off_ms": percentiles(off), "auth_on_ms": percentiles(on)}


def _cold_starts(api: httpx.Client, count: int) -> list[float]:
    samples = []
    for index in range(count):
        name = f"cold-{index}"
        api.post(
            "/functions", json={"name": name, "runtime": "python", "code": HELLO}
        ).raise_for_status()
        started = time.perf_counter()
        result = api.post(f"/functions/{name}/invoke", content=EVENT).json()
        samples.append((time.perf_counter() - started) * 1000)
        if not result["cold_start"] or result["error"]:
            raise RuntimeError(f"expected a clean cold start, got {result}")
        api.delete(f"/functions/{name}").raise_for_status()
    return samples


def render(report: dict[str, Any]) -> None:
    base = report["baseline"]
    table = Table(title="Nova benchmark (ms unless noted; baselines measured in the same run)")
    for column in ("what", "p50", "p95", "p99", "req/s @16", "vs baseline"):
        table.add_column(column, justify="right" if column != "what" else "left")
    bare, relay = base["warm_ms"], base["relay_warm_ms"]
    table.add_row(
        "bare uvicorn hello",
        f"{bare['p50']:.3f}",
        f"{bare['p95']:.3f}",
        f"{bare['p99']:.3f}",
        _rps(base["rps_16"]),
        "baseline",
    )
    table.add_row(
        "bare relay (1 hop)",
        f"{relay['p50']:.3f}",
        f"{relay['p95']:.3f}",
        f"{relay['p99']:.3f}",
        _rps(base["relay_rps_16"]),
        _share(base["relay_rps_16"], base["rps_16"], "bare"),
    )
    for backend, result in report["backends"].items():
        if "skipped" in result:
            table.add_row(f"{backend}", "-", "-", "-", "-", result["skipped"])
            continue
        warm = result["warm_ms"]
        share = _share(result["rps_16"], base["rps_16"], "bare")
        if base["relay_rps_16"]:
            share += f", {_share(result['rps_16'], base['relay_rps_16'], 'relay')}"
        table.add_row(
            f"{backend}: warm invoke",
            f"{warm['p50']:.3f}",
            f"{warm['p95']:.3f}",
            f"{warm['p99']:.3f}",
            _rps(result["rps_16"]),
            share,
        )
        if "alias_9010_ms" in result:
            plain, routed = result["plain_interleaved_ms"], result["alias_9010_ms"]
            table.add_row(
                f"{backend}: warm via alias 90/10",
                f"{routed['p50']:.3f}",
                f"{routed['p95']:.3f}",
                f"{routed['p99']:.3f}",
                "-",
                f"p50 {routed['p50'] / plain['p50'] - 1:+.1%} vs plain {plain['p50']:.3f} "
                "(alternating rounds)",
            )
        if "auth_on_ms" in result:
            off, on = result["auth_off_ms"], result["auth_on_ms"]
            table.add_row(
                f"{backend}: warm, authentication on",
                f"{on['p50']:.3f}",
                f"{on['p95']:.3f}",
                f"{on['p99']:.3f}",
                "-",
                f"p50 {on['p50'] / off['p50'] - 1:+.1%} vs off {off['p50']:.3f} "
                "(alternating rounds, two daemons)",
            )
        compat.rows(table, backend, result)
        cold = result["cold_ms"]
        table.add_row(
            f"{backend}: cold start",
            f"{cold['p50']:.1f}",
            f"{cold['p95']:.1f}",
            f"{cold['p99']:.1f}",
            "-",
            f"python3 spawn p50 {base['python_spawn_ms']['p50']:.1f}",
        )
        snapshot_starts.rows(table, backend, result)
        prestart_starts.rows(table, backend, result)
    if "microvm" in report:
        microvm.rows(table, report["microvm"])
    table.add_row(
        "bare python3 spawn",
        f"{base['python_spawn_ms']['p50']:.1f}",
        f"{base['python_spawn_ms']['p95']:.1f}",
        f"{base['python_spawn_ms']['p99']:.1f}",
        "-",
        "baseline",
    )
    table.add_row(
        "bare fork",
        f"{base['fork_ms']['p50']:.2f}",
        f"{base['fork_ms']['p95']:.2f}",
        f"{base['fork_ms']['p99']:.2f}",
        "-",
        "baseline",
    )
    Console().print(table)
    logs = Table(title="Invocation logs after the throughput run (records must equal calls)")
    for column in ("backend", "calls answered", "records stored", "spooled", "dropped", "equal"):
        logs.add_column(column, justify="right" if column != "backend" else "left")
    for backend, result in report["backends"].items():
        if "logs" in result:
            counts = result["logs"]
            logs.add_row(
                backend,
                f"{counts['answered']:,}",
                f"{counts['stored']:,}",
                f"{counts['spooled']:,}",
                f"{counts['dropped']:,}",
                "yes" if counts["answered"] == counts["stored"] else "[red]NO[/]",
            )
    Console().print(logs)
    if "async" in report:
        Console().print(async_events.render(report["async"]))
    if "triggers" in report:
        Console().print(queue_triggers.render(report["triggers"]))
    if "observability" in report:
        from bench import observability

        Console().print(observability.render(report["observability"]))


def _share(value: float | None, baseline: float | None, name: str) -> str:
    return f"{value / baseline:.0%} of {name} rps" if value and baseline else "-"


def _rps(value: float | None) -> str:
    return f"{value:,.0f}" if value else "n/a (wrk missing)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results.json"))
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--cold", type=int, default=20)
    parser.add_argument("--backends", default="process,container,gvisor")
    parser.add_argument("--async-events", type=int, default=2000, help="0 skips async")
    parser.add_argument(
        "--queue-triggers", type=int, default=2000, help="messages per broker; 0 skips"
    )
    parser.add_argument(
        "--microvm", type=int, default=5, help="boots and restores of a microVM; 0 skips"
    )
    parser.add_argument("--microvm-cache", type=Path, default=Path("/var/tmp/nova-bench-vm"))
    parser.add_argument(
        "--observability-rounds", type=int, default=2, help="metrics/tracing rounds; 0 skips"
    )
    args = parser.parse_args(argv)
    if not client.wrk_available():
        console.print(
            "[yellow]wrk is not installed: throughput is skipped (apt-get install wrk)[/]"
        )
    report: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "kernel": platform.release(),
        },
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "baseline": measure_baselines(args.requests, args.seconds),
        "backends": {},
    }
    for backend in args.backends.split(","):
        report["backends"][backend] = measure_backend(
            backend.strip(), args.requests, args.seconds, args.cold
        )
    if args.async_events:
        console.print("[dim]async: accepted/s, completed/s, submit -> finish latency …[/]")
        report["async"] = async_events.measure(args.async_events, 200)
    if args.queue_triggers:
        console.print("[dim]triggers: messages/s through one queue trigger per broker …[/]")
        report["triggers"] = queue_triggers.measure(args.queue_triggers, 50, 8)
    if args.microvm:
        report["microvm"] = asyncio.run(microvm.measure(args.microvm, 200, args.microvm_cache))
    if args.observability_rounds:
        from bench import observability  # it times daemons as bench.ab does, which imports this

        report["observability"] = observability.measure(args.requests, args.observability_rounds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    render(report)
    console.print(f"[dim]wrote {args.out}[/]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
