"""The daemon's Prometheus registry: the invocation metrics, the daemon's state, the process.

A registry of its own rather than prometheus_client's global one, so every daemon in a process
(tests start several) reports only what it saw.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.registry import Collector

TEXT_CONTENT_TYPE = CONTENT_TYPE_LATEST


class MetricsRegistry:
    def __init__(
        self,
        collectors: Iterable[Collector],
        refreshers: Iterable[Callable[[], Awaitable[None]]] = (),
    ) -> None:
        """``refreshers`` read what collectors cannot read synchronously (the store)."""
        self._refreshers = tuple(refreshers)
        self._registry = CollectorRegistry(auto_describe=False)
        for collector in collectors:
            self._registry.register(collector)
        ProcessCollector(registry=self._registry)
        PlatformCollector(registry=self._registry)
        GCCollector(registry=self._registry)

    async def refresh(self) -> None:
        """Called before each scrape."""
        for refresh in self._refreshers:
            await refresh()

    def text(self) -> bytes:
        """The Prometheus text exposition format."""
        return generate_latest(self._registry)

    def as_json(self) -> dict[str, Any]:
        """Every family with its samples, for people and the console."""
        return {
            metric.name: {
                "type": metric.type,
                "help": metric.documentation,
                "samples": [
                    {"name": sample.name, "labels": sample.labels, "value": sample.value}
                    for sample in metric.samples
                ],
            }
            for metric in self._registry.collect()
        }
