"""Each broker client against its real broker, under a consumer with a scripted invoker: a
message is handled once and acknowledged, two daemons' consumers of one trigger share the
messages (each runs once), the broker's lag is read, and a connection dropped under the
consumer is reconnected and consuming goes on."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as redis

from nova.core.queue_triggers import TriggerSource
from nova.triggers.brokers import BrokerUrls, open_broker
from nova.triggers.consumer import ConsumerState
from tests.brokers import SOURCES, Channel, broker_url, channel
from tests.unit.triggers.fakes import Rig, ok

URLS = BrokerUrls(broker_url("nats"), broker_url("rabbitmq"), broker_url("redis"))


@contextlib.asynccontextmanager
async def _consumers(source: str, target: str, name: str, count: int) -> AsyncIterator[list[Rig]]:
    rigs = []
    for n in range(count):
        rig = Rig([ok], name=name, source=TriggerSource(source), target=target, concurrency=4)
        stored = rig.consumer.trigger
        rig.consumer._broker = open_broker(stored, URLS, f"d{n}", ack_wait_s=30)
        rigs.append(rig)
    for rig in rigs:
        rig.consumer.start()
    try:
        for rig in rigs:
            await rig.until(lambda rig=rig: rig.consumer.state is ConsumerState.CONNECTED, 15)
        yield rigs
    finally:
        for rig in rigs:
            await rig.consumer.close()


async def _drop_connection(source: str, rig: Rig) -> None:
    """What a broker restart does to the consumer's connection."""
    broker: Any = rig.consumer._broker
    if source == "nats":
        await broker._client.close()
    elif source == "rabbitmq":
        await broker._connection.close()
    else:
        client = redis.from_url(broker_url("redis"))
        try:
            for entry in await client.client_list():
                if entry.get("name") == broker._consumer:
                    await client.execute_command("CLIENT", "KILL", "ID", entry["id"])
        finally:
            await client.aclose()


@pytest.mark.parametrize("source", SOURCES)
def test_consume_share_lag_and_reconnect(source: str) -> None:
    name = f"b-{source}"
    with channel(source, name) as ch:
        asyncio.run(_consume_share_lag_and_reconnect(source, ch, name))


async def _consume_share_lag_and_reconnect(source: str, ch: Channel, name: str) -> None:
    async with _consumers(source, ch.target, name, count=2) as rigs:
        await asyncio.to_thread(ch.publish, *(json.dumps({"n": n}).encode() for n in range(30)))
        await rigs[0].until(lambda: sum(r.consumer.stats.acked for r in rigs) == 30, 20)
        events = sorted(json.loads(call)["n"] for r in rigs for call in r.invoker.calls)
        assert events == list(range(30))  # each once, across both consumers
        assert await asyncio.to_thread(ch.pending) == 0
        assert await rigs[0].consumer._broker.lag() == 0

        first = rigs[0]
        acked = first.consumer.stats.acked
        await _drop_connection(source, first)
        await first.until(lambda: first.consumer.stats.reconnects == 1, 15)
        await first.until(lambda: first.consumer.state is ConsumerState.CONNECTED, 15)
        await rigs[1].consumer.close()  # the next message can only go to the reconnected one
        await asyncio.to_thread(ch.publish, b'{"after": true}')
        await first.until(lambda: b'{"after": true}' in first.invoker.calls, 20)
        await first.until(lambda: first.consumer.stats.acked == acked + 1, 5)
    if source == "redis":  # a consumer that stopped cleanly leaves no name in the group
        client = redis.from_url(broker_url("redis"))
        try:
            assert await client.xinfo_consumers(ch.target, f"nova-{name}") == []
        finally:
            await client.aclose()
