"""Event sources as Prometheus families: each queue trigger's messages and lag, and the
asynchronous-invocation queue's depth, oldest age and dead letters (its retries and dead
letters counted by this daemon are ``nova_daemon_async_*``).

The queue's numbers come from the store, which a collector cannot ask (collection is
synchronous): ``refresh`` reads them before each scrape.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from nova.core.errors import NovaError
from nova.core.events import QueueStats

MESSAGE_RESULTS = ("received", "acked", "failed", "dead_lettered")


@dataclass(frozen=True, slots=True)
class TriggerSample:
    """One consumer of this daemon: ``counts`` by MESSAGE_RESULTS; ``lag`` None when the
    broker did not say."""

    trigger: str
    source: str
    connected: bool
    reconnects: int
    counts: dict[str, int]
    lag: int | None


class EventSourceCollector:
    def __init__(
        self,
        triggers: Callable[[], Iterable[TriggerSample]],
        queue_stats: Callable[[], Awaitable[QueueStats]],
    ) -> None:
        self._triggers = triggers
        self._queue_stats = queue_stats
        self._queue: QueueStats | None = None

    async def refresh(self) -> None:
        try:
            self._queue = await self._queue_stats()
        except NovaError:
            self._queue = None  # the store is away: no queue families rather than stale ones

    def collect(self) -> Iterator[Metric]:
        labels = ("trigger", "source")
        messages = CounterMetricFamily(
            "nova_trigger_messages",
            "Queue-trigger messages by what became of them here: received, acked, failed "
            "(attempts), dead_lettered",
            labels=(*labels, "result"),
        )
        lag = GaugeMetricFamily(
            "nova_trigger_lag", "Messages not yet delivered, as the broker says", labels=labels
        )
        connected = GaugeMetricFamily(
            "nova_trigger_connected",
            "1 when the consumer is connected to its broker",
            labels=labels,
        )
        reconnects = CounterMetricFamily(
            "nova_trigger_reconnects", "Times the consumer lost its broker", labels=labels
        )
        for sample in self._triggers():
            key = [sample.trigger, sample.source]
            for result in MESSAGE_RESULTS:
                messages.add_metric([*key, result], sample.counts.get(result, 0))
            if sample.lag is not None:
                lag.add_metric(key, sample.lag)
            connected.add_metric(key, 1 if sample.connected else 0)
            reconnects.add_metric(key, sample.reconnects)
        yield from (messages, lag, connected, reconnects)
        queue = self._queue
        if queue is None:
            return
        events = GaugeMetricFamily(
            "nova_async_queue_events",
            "Asynchronous events in the store by status (pending + running: the depth)",
            labels=("status",),
        )
        events.add_metric(["pending"], queue.pending)
        events.add_metric(["running"], queue.running)
        events.add_metric(["dead"], queue.dead)
        yield events
        yield GaugeMetricFamily(
            "nova_async_queue_oldest_age_seconds",
            "How long the oldest unfinished asynchronous event has waited (0: none)",
            value=queue.oldest_age_s or 0.0,
        )
