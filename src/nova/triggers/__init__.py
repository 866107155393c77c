"""Queue triggers: consumers of NATS JetStream, RabbitMQ and Redis Streams that run a function
for every message (see :mod:`nova.core.queue_triggers`).

Each broker client lives behind the small :class:`~nova.triggers.broker.Broker` port; the
:class:`~nova.triggers.consumer.TriggerConsumer` runs one trigger over it (reconnects, retries,
dead letters, acknowledgements) and the :class:`~nova.triggers.manager.TriggerManager` keeps one
consumer per enabled trigger of the store.
"""
