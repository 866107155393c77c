"""Asynchronous invocation throughput and latency (`python -m bench.async_events`, and a row of
`make bench`).

Against a daemon on the process backend (so the numbers are the queue's, not a sandbox's):
  accepted   events answered 202 per second: ``--events`` submitted by 8 keep-alive clients
             at once, each a durable insert into the store;
  completed  the same burst, events finished per second (first submit to last finish);
  latency    submit -> finished, p50/p99, of ``--paced`` events sent one every 20 ms (an
             unloaded queue), from the store's own created_at / finished_at.
``--database-url`` measures PostgreSQL instead of the default SQLite file.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from bench import servers

ECHO = "def handler(event, context):\n    return event\n"
HEADERS = {"X-Nova-Invocation-Type": "Event", "Content-Type": "application/json"}
BODY = b'{"n": 1}'


def measure(events: int, paced: int, database_url: str | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="nova-bench-async-") as data_dir:
        env = {"NOVA_DATABASE_URL": database_url} if database_url else {}
        process, port = servers.start_nova(Path(data_dir), "process", env)
        url = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(base_url=url, timeout=60) as api:
                api.post(
                    "/functions",
                    json={"name": "echo", "runtime": "python", "code": ECHO, "max_replicas": 4},
                ).raise_for_status()
                api.post("/functions/echo/invoke", content=BODY).raise_for_status()  # warm
                started = time.perf_counter()
                ids = _burst(url, events)
                accepted_s = time.perf_counter() - started
                _wait_drained(api)
                burst = _timings(api, ids)
                paced_ids = []
                for _ in range(paced):
                    response = api.post("/functions/echo/invoke", content=BODY, headers=HEADERS)
                    paced_ids.append(response.json()["request_id"])
                    time.sleep(0.02)
                _wait_drained(api)
                latency = _timings(api, paced_ids)
        finally:
            servers.stop(process)
    return {
        "store": "postgresql" if database_url else "sqlite",
        "events": events,
        "accepted_per_s": round(events / accepted_s, 1),
        "completed_per_s": round(events / burst["span_s"], 1),
        "latency_ms": latency["latency_ms"],
        "burst_latency_ms": burst["latency_ms"],
    }


def _burst(url: str, events: int) -> list[str]:
    def send(count: int) -> list[str]:
        with httpx.Client(base_url=url, timeout=60) as api:
            return [
                api.post("/functions/echo/invoke", content=BODY, headers=HEADERS).json()[
                    "request_id"
                ]
                for _ in range(count)
            ]

    with ThreadPoolExecutor(8) as pool:
        parts = pool.map(send, [events // 8 + (index < events % 8) for index in range(8)])
        return [request_id for part in parts for request_id in part]


def _wait_drained(api: httpx.Client, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        queue = api.get("/stats").json()["async"]
        if queue["pending"] + queue["running"] == 0:
            return
        time.sleep(0.1)
    raise RuntimeError("the queue did not drain")


def _timings(api: httpx.Client, ids: list[str]) -> dict[str, Any]:
    from datetime import datetime

    from bench.run import percentiles

    created, finished, latencies = [], [], []
    for request_id in ids:
        event = api.get(f"/invocations/{request_id}").json()
        if event["status"] != "succeeded":
            raise RuntimeError(f"event {request_id} ended {event['status']}: {event['errors']}")
        start = datetime.fromisoformat(event["created_at"])
        end = datetime.fromisoformat(event["finished_at"])
        created.append(start)
        finished.append(end)
        latencies.append((end - start).total_seconds() * 1000)
    return {
        "span_s": (max(finished) - min(created)).total_seconds(),
        "latency_ms": percentiles(latencies),
    }


def render(result: dict[str, Any]) -> str:
    latency = result["latency_ms"]
    return (
        f"async ({result['store']}): {result['accepted_per_s']:,.0f} accepted/s, "
        f"{result['completed_per_s']:,.0f} completed/s ({result['events']} events); "
        f"submit->finish p50 {latency['p50']:.1f} ms, p99 {latency['p99']:.1f} ms (paced)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--paced", type=int, default=200)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args(argv)
    result = measure(args.events, args.paced, args.database_url)
    print(json.dumps(result, indent=2))
    print(render(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
