"""Keeps one consumer per enabled trigger of the store running in this daemon.

``reconcile`` reads every trigger and starts the consumers missing, restarts those whose trigger
changed and stops those whose trigger was paused or deleted. It runs at start-up, after a
trigger is changed through this daemon, and when the change log says a trigger changed
through any daemon (``nova.functions.follower``), so triggers added or removed at runtime start
and stop consumers on every daemon.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from nova.core.errors import NovaError
from nova.core.queue_triggers import QueueTrigger
from nova.store.event_source_ports import TriggerRepository
from nova.triggers.consumer import TriggerConsumer

logger = logging.getLogger(__name__)

PAGE = 500


class TriggerManager:
    def __init__(
        self,
        triggers: TriggerRepository,
        make_consumer: Callable[[QueueTrigger], TriggerConsumer],
        stop_timeout_s: float,
    ) -> None:
        self._triggers = triggers
        self._make_consumer = make_consumer
        self._stop_timeout_s = stop_timeout_s
        self._consumers: dict[str, TriggerConsumer] = {}
        self._lock = asyncio.Lock()
        self._closed = False

    def consumer(self, name: str) -> TriggerConsumer | None:
        return self._consumers.get(name)

    def consumers(self) -> list[TriggerConsumer]:
        return [self._consumers[name] for name in sorted(self._consumers)]

    async def reconcile(self) -> None:
        """Bring the consumers in line with the store; a store that cannot be read leaves
        them as they are (the next change or reconcile tries again)."""
        async with self._lock:
            if self._closed:
                return
            try:
                wanted = {trigger.name: trigger for trigger in await self._all() if trigger.enabled}
            except NovaError as exc:
                logger.warning("cannot read the queue triggers (will retry): %s", exc.message)
                return
            for name, consumer in list(self._consumers.items()):
                trigger = wanted.get(name)
                if trigger is None or not trigger.same_consumer(consumer.trigger):
                    del self._consumers[name]
                    await consumer.close(self._stop_timeout_s)
                    logger.info("trigger %s: consumer stopped", name)
            for name, trigger in wanted.items():
                if name not in self._consumers:
                    consumer = self._make_consumer(trigger)
                    self._consumers[name] = consumer
                    consumer.start()
                    logger.info(
                        "trigger %s: consuming %s %r for %s",
                        name,
                        trigger.source.value,
                        trigger.target,
                        trigger.reference,
                    )

    async def _all(self) -> list[QueueTrigger]:
        found: list[QueueTrigger] = []
        cursor: str | None = None
        while True:
            page = await self._triggers.list(limit=PAGE, cursor=cursor)
            found.extend(page.items)
            if page.next is None:
                return found
            cursor = page.next

    async def close(self) -> None:
        """Stop every consumer; messages still running get ``stop_timeout_s`` to finish."""
        async with self._lock:
            self._closed = True
            consumers, self._consumers = list(self._consumers.values()), {}
        await asyncio.gather(*(consumer.close(self._stop_timeout_s) for consumer in consumers))
