"""Queue-trigger throughput per broker (`python -m bench.queue_triggers`, and a row of
`make bench`).

Against a daemon on the process backend (so the numbers are the consumer's, not a sandbox's):
for NATS JetStream, RabbitMQ and Redis Streams in turn, ``--messages`` JSON messages are
published to a fresh subject / queue / stream while its trigger is paused, then the trigger is
resumed and timed until its consumer acknowledged them all (each one a synchronous invoke of an
echo function): messages per second through one trigger, ``--concurrency`` at once, fetched
``--batch`` at a time. Broker addresses: NOVA_TEST_NATS_URL, NOVA_TEST_RABBITMQ_URL,
NOVA_TEST_REDIS_URL (defaults: the local servers); an unreachable broker's row says so.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench import servers

ECHO = "def handler(event, context):\n    return event\n"
SOURCES = {
    "nats": ("subject", "nats://127.0.0.1:4222"),
    "rabbitmq": ("queue", "amqp://guest:guest@127.0.0.1:5672/"),
    "redis": ("stream", "redis://127.0.0.1:6379/0"),
}


def _url(source: str) -> str:
    return os.environ.get(f"NOVA_TEST_{source.upper()}_URL", SOURCES[source][1])


def measure(messages: int, batch: int, concurrency: int) -> dict[str, Any]:
    env = {f"NOVA_TRIGGERS__{source.upper()}_URL": _url(source) for source in SOURCES}
    env["NOVA_TRIGGERS__LAG_INTERVAL_S"] = "1"
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="nova-bench-triggers-") as data_dir:
        process, port = servers.start_nova(Path(data_dir), "process", env)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as api:
                body = {"name": "echo", "runtime": "python", "code": ECHO, "max_replicas": 8}
                api.post("/functions", json=body).raise_for_status()
                api.post("/functions/echo/invoke", json={}).raise_for_status()  # warm
                for source in SOURCES:
                    try:
                        results[source] = _one(api, source, messages, batch, concurrency)
                    except (OSError, RuntimeError) as exc:
                        results[source] = {"error": str(exc)}
        finally:
            servers.stop(process)
    return {"messages": messages, "batch": batch, "concurrency": concurrency, "brokers": results}


def _one(
    api: httpx.Client, source: str, messages: int, batch: int, concurrency: int
) -> dict[str, Any]:
    suffix = uuid.uuid4().hex[:8]
    name, target, stream = f"bench-{source}", f"nova-bench-{suffix}", f"NOVA_BENCH_{suffix}"
    asyncio.run(_prepare(source, target, stream))
    try:
        trigger = {
            "name": name,
            "function": "echo",
            "source": source,
            SOURCES[source][0]: target,
            "batch_size": batch,
            "concurrency": concurrency,
            "enabled": False,
        }
        api.post("/triggers", json=trigger).raise_for_status()
        if source != "nats":  # the queue / group must exist before the backlog is published
            api.post(f"/triggers/{name}/resume").raise_for_status()
            _until(api, name, lambda c: c.get("state") == "connected")
            api.post(f"/triggers/{name}/pause").raise_for_status()
        asyncio.run(_publish(source, target, messages))
        started = time.perf_counter()
        api.post(f"/triggers/{name}/resume").raise_for_status()
        consumer = _until(api, name, lambda c: c.get("acked", 0) >= messages, 600)
        elapsed_s = time.perf_counter() - started
        api.delete(f"/triggers/{name}").raise_for_status()
    finally:
        asyncio.run(_cleanup(source, target, stream))
    return {
        "per_s": round(messages / elapsed_s, 1),
        "seconds": round(elapsed_s, 2),
        "dead_lettered": consumer["dead_lettered"],
    }


def _until(api: httpx.Client, name: str, done: Any, timeout_s: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        consumer: dict[str, Any] = api.get(f"/triggers/{name}").json()["consumer"] or {}
        if done(consumer):
            return consumer
        time.sleep(0.02)
    raise RuntimeError(f"trigger {name} did not get there in {timeout_s:.0f}s: {consumer}")


async def _prepare(source: str, target: str, stream: str) -> None:
    if source == "nats":
        import nats

        client = await nats.connect(_url(source), connect_timeout=3, allow_reconnect=False)
        try:
            await client.jetstream().add_stream(name=stream, subjects=[target])
        finally:
            await client.close()


async def _publish(source: str, target: str, count: int) -> None:
    bodies = [json.dumps({"n": n}).encode() for n in range(count)]
    if source == "nats":
        import nats

        client = await nats.connect(_url(source), connect_timeout=3, allow_reconnect=False)
        try:
            jetstream = client.jetstream()
            for chunk in range(0, count, 500):
                await asyncio.gather(*(jetstream.publish(target, b) for b in bodies[chunk:][:500]))
        finally:
            await client.close()
    elif source == "rabbitmq":
        import aio_pika

        async with await aio_pika.connect(_url(source), timeout=3) as connection:
            exchange = (await connection.channel()).default_exchange
            for body in bodies:
                await exchange.publish(aio_pika.Message(body), routing_key=target)
    else:
        import redis.asyncio as redis

        client = redis.from_url(_url(source))
        try:
            async with client.pipeline(transaction=False) as pipe:
                for body in bodies:
                    pipe.xadd(target, {"body": body})
                await pipe.execute()
        finally:
            await client.aclose()


async def _cleanup(source: str, target: str, stream: str) -> None:
    if source == "nats":
        import nats

        client = await nats.connect(_url(source), connect_timeout=3, allow_reconnect=False)
        try:
            await client.jetstream().delete_stream(stream)
        finally:
            await client.close()
    elif source == "rabbitmq":
        import aio_pika

        async with await aio_pika.connect(_url(source), timeout=3) as connection:
            await (await connection.channel()).queue_delete(target)
    else:
        import redis.asyncio as redis

        client = redis.from_url(_url(source))
        try:
            await client.delete(target)
        finally:
            await client.aclose()


def render(result: dict[str, Any]) -> str:
    parts = []
    for source, row in result["brokers"].items():
        if "error" in row:
            parts.append(f"{source}: unavailable ({row['error']})")
        else:
            parts.append(f"{source} {row['per_s']:,.0f}/s")
    return (
        f"queue triggers ({result['messages']} messages, batch {result['batch']}, "
        f"concurrency {result['concurrency']}): " + ", ".join(parts)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)
    result = measure(args.messages, args.batch, args.concurrency)
    print(json.dumps(result, indent=2))
    print(render(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
