"""Counts of HTTP-trigger requests and schedule runs, as Prometheus counters.

Bumped with a dict update (no lock: one event loop) and turned into metric families only
when scraped, like the daemon's other counters.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector


class TriggerMetrics(Collector):
    def __init__(self) -> None:
        self.http_requests: Counter[tuple[str, str, str]] = Counter()  # (kind, function, status)
        self.schedule_runs: Counter[str] = Counter()  # by function
        self.schedule_missed: Counter[str] = Counter()  # ticks skipped by the catch-up policy

    def http_request(self, kind: str, function: str, status: int) -> None:
        self.http_requests[(kind, function, str(status))] += 1

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "nova_http_trigger_requests",
            "Requests through function URLs (kind url) and custom routes (kind route), by "
            "function and response status",
            labels=("kind", "function", "status"),
        )
        for labels, count in self.http_requests.items():
            requests.add_metric(list(labels), count)
        yield requests
        yield _by_function(
            "nova_schedule_runs", "Schedule ticks whose event was queued", self.schedule_runs
        )
        yield _by_function(
            "nova_schedule_missed_ticks",
            "Ticks missed while no daemon ran the schedule and skipped by its catch-up policy",
            self.schedule_missed,
        )


def _by_function(name: str, documentation: str, counts: Counter[str]) -> Metric:
    family = CounterMetricFamily(name, f"{documentation}, by function", labels=("function",))
    for function, count in counts.items():
        family.add_metric([function], count)
    return family
