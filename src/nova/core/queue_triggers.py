"""Queue triggers: a function run for every message of a NATS JetStream subject, a RabbitMQ
queue or a Redis stream.

A trigger is stored (so every daemon on the store consumes it) and each daemon runs one
consumer per enabled trigger. The brokers share a trigger's messages between those consumers
(one durable JetStream consumer, one queue, one consumer group), so each message is handled by
one daemon.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from nova.core.errors import NovaError


class TriggerSource(StrEnum):
    NATS = "nats"  # JetStream: a durable pull consumer on a subject
    RABBITMQ = "rabbitmq"  # a durable queue
    REDIS = "redis"  # a stream, read by a consumer group

    @property
    def target_field(self) -> str:
        """What a trigger of this source consumes from, as the API names it."""
        return _TARGET_FIELD[self]


_TARGET_FIELD = {
    TriggerSource.NATS: "subject",
    TriggerSource.RABBITMQ: "queue",
    TriggerSource.REDIS: "stream",
}

TRIGGER_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,62}$"
TRIGGER_NAME = re.compile(TRIGGER_NAME_PATTERN)
MAX_BATCH_SIZE = 1000
MAX_CONCURRENCY = 1000


@dataclass(frozen=True, slots=True)
class QueueTrigger:
    """``target`` is the subject, queue or stream; ``url`` "" means the daemon's configured
    URL for the source; ``qualifier`` "" means $LATEST."""

    name: str
    function: str
    qualifier: str
    source: TriggerSource
    target: str
    url: str
    batch_size: int
    concurrency: int
    enabled: bool
    created_at: datetime
    updated_at: datetime

    @property
    def reference(self) -> str:
        return f"{self.function}:{self.qualifier}" if self.qualifier else self.function

    def same_consumer(self, other: QueueTrigger) -> bool:
        """Whether a consumer started for ``other`` consumes this trigger unchanged."""
        return (
            self.function,
            self.qualifier,
            self.source,
            self.target,
            self.url,
            self.batch_size,
            self.concurrency,
        ) == (
            other.function,
            other.qualifier,
            other.source,
            other.target,
            other.url,
            other.batch_size,
            other.concurrency,
        )


class TriggerNotFound(NovaError):
    code = "Trigger.NotFound"
    status = 404

    def __init__(self, name: str) -> None:
        super().__init__(f"no trigger {name!r}; `nova trigger list` shows the triggers")
        self.name = name


class TriggerAlreadyExists(NovaError):
    code = "Trigger.AlreadyExists"
    status = 409

    def __init__(self, name: str) -> None:
        super().__init__(
            f"a trigger named {name!r} already exists; choose another name, or delete it first "
            f"(`nova trigger delete {name}`)"
        )
        self.name = name
