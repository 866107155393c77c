"""Event-source metrics: each trigger consumer's counts, lag and connection, and the async
queue's depth, oldest age and dead letters read from the store before a scrape (none while
the store is away, rather than stale numbers)."""

from __future__ import annotations

from nova.core.errors import StoreUnavailable
from nova.core.events import QueueStats
from nova.observability.event_metrics import EventSourceCollector, TriggerSample
from nova.observability.prometheus import MetricsRegistry

SAMPLE = TriggerSample(
    trigger="uploads",
    source="nats",
    connected=False,
    reconnects=2,
    counts={"received": 5, "acked": 4, "failed": 3, "dead_lettered": 1},
    lag=7,
)


async def test_triggers_and_the_async_queue_are_reported() -> None:
    stats = [QueueStats(pending=3, running=2, dead=4, oldest_age_s=12.5)]

    async def queue_stats() -> QueueStats:
        if not stats:
            raise StoreUnavailable("down")
        return stats[0]

    collector = EventSourceCollector(lambda: [SAMPLE], queue_stats)
    registry = MetricsRegistry([collector], [collector.refresh])
    await registry.refresh()
    text = registry.text().decode()
    labels = 'source="nats",trigger="uploads"'
    for line in [
        f'nova_trigger_messages_total{{result="received",{labels}}} 5.0',
        f'nova_trigger_messages_total{{result="acked",{labels}}} 4.0',
        f'nova_trigger_messages_total{{result="failed",{labels}}} 3.0',
        f'nova_trigger_messages_total{{result="dead_lettered",{labels}}} 1.0',
        f"nova_trigger_lag{{{labels}}} 7.0",
        f"nova_trigger_connected{{{labels}}} 0.0",
        f"nova_trigger_reconnects_total{{{labels}}} 2.0",
        'nova_async_queue_events{status="pending"} 3.0',
        'nova_async_queue_events{status="running"} 2.0',
        'nova_async_queue_events{status="dead"} 4.0',
        "nova_async_queue_oldest_age_seconds 12.5",
    ]:
        assert line in text, line

    stats.clear()
    await registry.refresh()
    assert "nova_async_queue_events" not in registry.text().decode()
