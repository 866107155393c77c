"""How soon a second daemon on the same store serves a change made through the first.

`python -m bench.follow [--stores sqlite,postgres] [--rounds 30]`

Two daemons share one store (a SQLite file, or a throwaway PostgreSQL database at
NOVA_TEST_POSTGRES_URL's server). Each round PATCHes new code through daemon A, then polls
daemon B's invoke until it answers with that code; the time from the PATCH's answer to B's first
new answer is the follow latency (the change log: polled every store.change_poll_s on SQLite,
woken by NOTIFY on PostgreSQL; then B re-reads the function and hot-reloads its warm instance).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

from bench import servers
from bench.run import percentiles

console = Console(stderr=True)
DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
CODE = "def handler(event, context):\n    return %d\n"


def _follow_once(a: httpx.Client, b: httpx.Client, round_number: int) -> float:
    a.patch("/functions/follow", json={"code": CODE % round_number}).raise_for_status()
    changed = time.perf_counter()
    while b.post("/functions/follow/invoke", json={}).json().get("output") != round_number:
        time.sleep(0.002)
    return (time.perf_counter() - changed) * 1000


def measure(database_url: str, rounds: int) -> dict[str, Any]:
    env = {"NOVA_DATABASE_URL": database_url}
    with tempfile.TemporaryDirectory(prefix="nova-follow-") as data:
        first, first_port = servers.start_nova(Path(data) / "a", "process", env)
        second, second_port = servers.start_nova(Path(data) / "b", "process", env)
        try:
            with (
                httpx.Client(base_url=f"http://127.0.0.1:{first_port}", timeout=30) as a,
                httpx.Client(base_url=f"http://127.0.0.1:{second_port}", timeout=30) as b,
            ):
                a.post(
                    "/functions", json={"name": "follow", "runtime": "python", "code": CODE % 0}
                ).raise_for_status()
                b.post("/functions/follow/invoke", json={}).raise_for_status()  # warm on B
                samples = [_follow_once(a, b, index) for index in range(1, rounds + 1)]
        finally:
            servers.stop(first)
            servers.stop(second)
    return percentiles(samples)


async def _admin(sql: str) -> None:
    url = make_url(os.environ.get("NOVA_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL))
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn, timeout=5)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    results: dict[str, dict[str, Any]] = {}
    for store in args.stores.split(","):
        console.print(f"[dim]{store}: following …[/]")
        if store == "sqlite":
            with tempfile.TemporaryDirectory(prefix="nova-follow-db-") as folder:
                results[store] = measure(f"sqlite:///{folder}/shared.db", args.rounds)
        else:
            name = f"nova_follow_{uuid.uuid4().hex[:8]}"
            asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
            try:
                base = make_url(os.environ.get("NOVA_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL))
                url = base.set(database=name).render_as_string(hide_password=False)
                results[store] = measure(url, args.rounds)
            finally:
                asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    table = Table(title="A change through daemon A, served by daemon B (ms)")
    for column in ("store", "p50", "p95", "p99", "n"):
        table.add_column(column, justify="left" if column == "store" else "right")
    for store, numbers in results.items():
        table.add_row(
            store, *(f"{numbers[key]:.1f}" for key in ("p50", "p95", "p99")), str(numbers["n"])
        )
    Console().print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
