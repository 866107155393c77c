"""What the API does with queue triggers: validate, store, and start or stop the consumer.

Validation happens here, at the edge, so a stored trigger is always one a consumer can run:
a legal name, an existing function (and qualifier), the target its source consumes from, a URL
of that source's scheme, and sizes in range.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from nova.core.errors import RequestInvalid
from nova.core.models import Page
from nova.core.queue_triggers import (
    MAX_BATCH_SIZE,
    MAX_CONCURRENCY,
    TRIGGER_NAME,
    QueueTrigger,
    TriggerSource,
)
from nova.core.tenancy import split_full_reference
from nova.store.event_source_ports import TriggerRepository
from nova.store.ports import DEFAULT_PAGE_LIMIT
from nova.triggers.manager import TriggerManager

MAX_TARGET = 255  # RabbitMQ's limit for queue names; NATS subjects and Redis keys fit in it
_SCHEMES = {
    TriggerSource.NATS: ("nats", "tls"),
    TriggerSource.RABBITMQ: ("amqp", "amqps"),
    TriggerSource.REDIS: ("redis", "rediss", "unix"),
}

# Checks that ``name[:qualifier]`` can be invoked (FunctionNotFound, VersionNotFound, ...).
Check = Callable[[str, str | None], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class TriggerSpec:
    """A trigger as asked for, before validation."""

    name: str
    function: str
    source: str
    target: str
    url: str = ""
    batch_size: int = 10
    concurrency: int = 1
    enabled: bool = True


class TriggerService:
    def __init__(self, triggers: TriggerRepository, manager: TriggerManager, check: Check) -> None:
        self._triggers = triggers
        self._manager = manager
        self._check = check

    @property
    def manager(self) -> TriggerManager:
        return self._manager

    async def create(self, spec: TriggerSpec) -> QueueTrigger:
        trigger = validate(spec)
        await self._check(trigger.function, trigger.qualifier or None)
        stored = await self._triggers.create(trigger)
        await self._manager.reconcile()
        return stored

    async def get(self, name: str) -> QueueTrigger:
        return await self._triggers.get(_name(name))

    async def list(
        self, limit: int = DEFAULT_PAGE_LIMIT, cursor: str | None = None
    ) -> Page[QueueTrigger]:
        return await self._triggers.list(limit=limit, cursor=cursor)

    async def set_enabled(self, name: str, enabled: bool) -> QueueTrigger:
        trigger = await self._triggers.set_enabled(_name(name), enabled)
        await self._manager.reconcile()
        return trigger

    async def delete(self, name: str) -> QueueTrigger:
        trigger = await self._triggers.delete(_name(name))
        await self._manager.reconcile()
        return trigger


def validate(spec: TriggerSpec) -> QueueTrigger:
    """The trigger ``spec`` describes; ``RequestInvalid`` naming the first bad field."""
    name = _name(spec.name)
    try:
        source = TriggerSource(spec.source)
    except ValueError:
        sources = ", ".join(source.value for source in TriggerSource)
        raise RequestInvalid(f"source: {spec.source!r} is not a source; use {sources}") from None
    function, qualifier = split_full_reference(spec.function)
    field = source.target_field
    if not spec.target or len(spec.target) > MAX_TARGET or any(c.isspace() for c in spec.target):
        raise RequestInvalid(
            f"{field}: give the {field} a {source.value} trigger consumes from: 1 to "
            f"{MAX_TARGET} characters without spaces"
        )
    if spec.url:
        scheme = urlsplit(spec.url).scheme
        if scheme not in _SCHEMES[source]:
            schemes = " or ".join(f"{s}://" for s in _SCHEMES[source])
            raise RequestInvalid(
                f"url: a {source.value} URL starts with {schemes} (or leave it out to use "
                f"triggers.{source.value}_url)"
            )
    if not 1 <= spec.batch_size <= MAX_BATCH_SIZE:
        raise RequestInvalid(f"batch_size: {spec.batch_size} is outside 1-{MAX_BATCH_SIZE}")
    if not 1 <= spec.concurrency <= MAX_CONCURRENCY:
        raise RequestInvalid(f"concurrency: {spec.concurrency} is outside 1-{MAX_CONCURRENCY}")
    now = datetime.now(UTC)
    return QueueTrigger(
        name=name,
        function=function,
        qualifier=qualifier or "",
        source=source,
        target=spec.target,
        url=spec.url,
        batch_size=spec.batch_size,
        concurrency=spec.concurrency,
        enabled=spec.enabled,
        created_at=now,
        updated_at=now,
    )


def _name(name: str) -> str:
    if not TRIGGER_NAME.fullmatch(name):
        raise RequestInvalid(
            f"name: {name!r} is not a valid trigger name; use 1-63 characters of lower-case "
            "letters, digits and '-', starting with a letter"
        )
    return name
