"""The broker clients behind :class:`nova.triggers.broker.Broker`, one module per broker; each
imports its library only when a trigger of that source runs."""

from __future__ import annotations

from dataclasses import dataclass

from nova.core.queue_triggers import QueueTrigger, TriggerSource
from nova.triggers.broker import Broker


@dataclass(frozen=True, slots=True)
class BrokerUrls:
    """The configured URL of each source, for triggers that name none."""

    nats: str
    rabbitmq: str
    redis: str

    def of(self, trigger: QueueTrigger) -> str:
        return trigger.url or getattr(self, trigger.source.value)


def open_broker(
    trigger: QueueTrigger, urls: BrokerUrls, daemon_id: str, ack_wait_s: float
) -> Broker:
    """The client for ``trigger``'s source. Every daemon uses the same consumer identity on
    the broker (``nova-<trigger>``), so they share its messages; Redis consumers of the group
    are named per daemon."""
    url = urls.of(trigger)
    group = f"nova-{trigger.name}"
    if trigger.source is TriggerSource.NATS:
        from nova.triggers.brokers.nats import NatsBroker

        return NatsBroker(url, trigger.target, group, ack_wait_s)
    if trigger.source is TriggerSource.RABBITMQ:
        from nova.triggers.brokers.rabbitmq import RabbitBroker

        prefetch = trigger.batch_size + trigger.concurrency  # what a consumer may hold
        return RabbitBroker(url, trigger.target, prefetch, f"{group}-{daemon_id}")
    from nova.triggers.brokers.redis import RedisBroker

    return RedisBroker(url, trigger.target, group, f"{group}-{daemon_id}", ack_wait_s)
