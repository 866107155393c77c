"""Soak: no invocation record is lost while the store is away (marker ``soak``, ~60 s in all).

Each test drives a real daemon (process backend) with several client threads for a few seconds
and makes its store unavailable in the middle: on SQLite another connection holds the write
lock (BEGIN EXCLUSIVE); on PostgreSQL a TCP proxy written here, between the daemon and the
server, is cut (open connections closed, new ones refused). The daemon is tuned to give up on a
store write after 1 s so the records really go through the spool. Afterwards, once /stats says
nothing is left to write, every answered invocation (by the request id in its response) must
have exactly one record in the store. Load is bounded in time and count and goes only to
127.0.0.1.

The last test kills the daemon with SIGKILL while its records sit in the spool, and checks the
next start replays them.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from tests.e2e.daemon_process import DaemonProcess, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.soak]

HELLO = "def handler(event, context):\n    return {'n': event['n']}\n"
# Short store timeouts and a small buffer: a few seconds of outage must reach the spool.
SOAK_ENV = {
    "NOVA_EXECUTOR__LOG_TIMEOUT_S": "1",
    "NOVA_EXECUTOR__LOG_BUFFER_SIZE": "500",
    "NOVA_EXECUTOR__LOG_RETRY_INTERVAL_S": "0.2",
    "NOVA_EXECUTOR__LOG_FLUSH_INTERVAL_MS": "100",
    "NOVA_LOG_LEVEL": "warning",
}
CLIENTS = 8
LOAD_S = 9.0
MAX_CALLS_PER_CLIENT = 20_000


def deploy(daemon: DaemonProcess) -> None:
    with daemon.client() as api:
        api.post(
            "/functions",
            json={"name": "soak", "runtime": "python", "code": HELLO, "max_replicas": 4},
        ).raise_for_status()
        assert api.post("/functions/soak/invoke", json={"n": -1}).status_code == 200


def load(daemon: DaemonProcess, outage: Callable[[], None]) -> set[str]:
    """CLIENTS threads invoking for LOAD_S seconds while ``outage`` runs in another thread
    after the first second; the request ids of every answered invocation."""

    def client(number: int) -> list[str]:
        ids = []
        deadline = time.monotonic() + LOAD_S
        with daemon.client() as api:
            for call in range(MAX_CALLS_PER_CLIENT):
                if time.monotonic() > deadline:
                    break
                response = api.post("/functions/soak/invoke", json={"n": number * 1_000_000 + call})
                assert response.status_code == 200, response.text
                body = response.json()
                assert body["error"] is None, body
                ids.append(body["request_id"])
        return ids

    with ThreadPoolExecutor(CLIENTS + 1) as pool:
        clients = [pool.submit(client, number) for number in range(CLIENTS)]
        time.sleep(1.0)
        pool.submit(outage).result()
        answered = [request_id for future in clients for request_id in future.result()]
    assert len(answered) == len(set(answered))  # the daemon's ids are unique
    return set(answered)


def logs_settled(daemon: DaemonProcess, timeout_s: float = 60) -> dict[str, Any]:
    """/stats' logs section once nothing is left to write (memory, in flight, spool)."""
    deadline = time.monotonic() + timeout_s
    with daemon.client() as api:
        while True:
            logs: dict[str, Any] = api.get("/stats").json()["logs"]
            if logs["backlog"] == 0 or time.monotonic() > deadline:
                return logs
            time.sleep(0.1)


def sqlite_ids(data_dir: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(data_dir / "nova.db")) as connection:
        rows = connection.execute(
            "SELECT id FROM invocation_logs WHERE function_name = 'soak'"
        ).fetchall()
    return [row[0] for row in rows]


def hold_sqlite_write_lock(data_dir: Path, seconds: float) -> Callable[[], None]:
    def outage() -> None:
        connection = sqlite3.connect(data_dir / "nova.db", timeout=30, isolation_level=None)
        try:
            connection.execute("BEGIN EXCLUSIVE")
            time.sleep(seconds)
            connection.execute("COMMIT")
        finally:
            connection.close()

    return outage


def assert_one_record_each(answered: set[str], stored: list[str], warm_up: int = 1) -> None:
    assert len(stored) == len(set(stored))  # the primary key makes this hold; the next line
    missing = answered - set(stored)  # is what the feature guards: none lost
    assert not missing, f"{len(missing)} of {len(answered)} answered invocations have no record"
    assert len(stored) == len(answered) + warm_up


def test_holding_the_sqlite_write_lock_loses_no_record(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    daemon = DaemonProcess(data_dir, env=SOAK_ENV).start()
    try:
        deploy(daemon)
        answered = load(daemon, hold_sqlite_write_lock(data_dir, 3.0))
        logs = logs_settled(daemon)
        assert logs["backlog"] == 0, logs
        assert logs["spooled"] > 0, logs  # the outage did reach the spool
        assert logs["replayed"] >= logs["spooled"], logs
        assert logs["dropped"] == 0, logs
    finally:
        assert daemon.stop() == 0
    assert_one_record_each(answered, sqlite_ids(data_dir))


def test_a_sigkill_while_records_are_spooled_replays_them_at_the_next_start(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    first = DaemonProcess(data_dir, env=SOAK_ENV).start()
    lock = sqlite3.connect(data_dir / "nova.db", timeout=30, isolation_level=None)
    try:
        deploy(first)
        with contextlib.closing(lock):
            lock.execute("BEGIN EXCLUSIVE")  # the store is away from here on
            with first.client() as api:
                answered = {
                    api.post("/functions/soak/invoke", json={"n": n}).json()["request_id"]
                    for n in range(200)
                }
            deadline = time.monotonic() + 30
            with first.client() as api:
                while api.get("/stats").json()["logs"]["spooled"] < len(answered):
                    assert time.monotonic() < deadline, api.get("/stats").json()["logs"]
                    time.sleep(0.05)
            first.stop(signal.SIGKILL)
            lock.execute("COMMIT")
    finally:
        first.stop(signal.SIGKILL)
    assert not answered & set(sqlite_ids(data_dir))  # nothing reached the store before
    assert any((data_dir / "log-spool").glob("*.spool"))

    second = DaemonProcess(data_dir, env=SOAK_ENV).start()
    try:
        logs = logs_settled(second)
        assert logs["backlog"] == 0, logs
        assert logs["replayed"] >= len(answered), logs
    finally:
        assert second.stop() == 0
    assert_one_record_each(answered, sqlite_ids(data_dir))


# -- PostgreSQL, behind a proxy the test can cut -------------------------------------------------


class CuttableProxy:
    """A TCP proxy on 127.0.0.1 to ``target_port``, on an event loop of its own thread.
    ``cut()`` closes every open connection and refuses new ones until ``restore()``."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self._target_port = target_port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._cut = False
        self._open: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    def __enter__(self) -> CuttableProxy:
        self._thread.start()
        self._server = self._call(asyncio.start_server(self._serve, "127.0.0.1", self.port))
        return self

    def __exit__(self, *_: object) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            self._call(self._server.wait_closed())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    def cut(self) -> None:
        async def cut() -> None:
            self._cut = True
            for writer in list(self._open):
                writer.transport.abort()

        self._call(cut())

    def restore(self) -> None:
        async def restore() -> None:
            self._cut = False

        self._call(restore())

    async def _serve(self, client_in: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        if self._cut:
            client.transport.abort()
            return
        try:
            server_in, server = await asyncio.open_connection("127.0.0.1", self._target_port)
        except OSError:
            client.transport.abort()
            return
        self._open |= {client, server}
        try:
            await asyncio.gather(_pipe(client_in, server), _pipe(server_in, client))
        finally:
            self._open -= {client, server}
            client.transport.abort()
            server.transport.abort()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    sink.transport.abort()


@pytest.fixture
def proxied(database_url: str) -> Iterator[tuple[str, CuttableProxy]]:
    """The throwaway database's URL through a cuttable proxy, and the proxy."""
    url = make_url(database_url)
    with CuttableProxy(url.port or 5432) as proxy:
        yield url.set(host="127.0.0.1", port=proxy.port).render_as_string(False), proxy


async def _postgres_ids(database_url: str) -> list[str]:
    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(False)
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        rows = await connection.fetch("SELECT id FROM invocation_logs WHERE function_name = 'soak'")
    finally:
        await connection.close()
    return [row["id"] for row in rows]


@pytest.mark.postgres
def test_cutting_the_postgres_connection_loses_no_record(
    tmp_path: Path, database_url: str, proxied: tuple[str, CuttableProxy]
) -> None:
    through_proxy, proxy = proxied

    def outage() -> None:
        proxy.cut()
        time.sleep(3.0)
        proxy.restore()

    daemon = DaemonProcess(
        tmp_path / "data", env={**SOAK_ENV, "NOVA_DATABASE_URL": through_proxy}
    ).start()
    try:
        deploy(daemon)
        answered = load(daemon, outage)
        logs = logs_settled(daemon)
        assert logs["backlog"] == 0, logs
        assert logs["spooled"] > 0, logs
        assert logs["dropped"] == 0, logs
    finally:
        assert daemon.stop() == 0
    assert_one_record_each(answered, asyncio.run(_postgres_ids(database_url)))
