"""The daemon's state as Prometheus families, read when someone scrapes (nothing per request):
instances by state and backend, queued requests, the running totals, invocation-log delivery,
the store's transaction times."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)

from nova.observability.invocation_logs import LogStats
from nova.store.timings import TimingSnapshot


@dataclass(frozen=True, slots=True)
class PoolSample:
    """One pool's instances per state ("starting" for those not ready yet) and the requests
    "waiting" for a slot; ``backend`` None: the default one."""

    function: str
    version: str
    backend: str | None
    counts: Mapping[str, int]


class DaemonCollector:
    def __init__(
        self,
        pools: Callable[[], Iterable[PoolSample]],
        default_backend: str,
        counters: Callable[[], Mapping[str, int]],
        log_stats: Callable[[], LogStats],
        inflight: Callable[[], int],
        store_timings: Callable[[], TimingSnapshot],
    ) -> None:
        self._pools = pools
        self._default_backend = default_backend
        self._counters = counters
        self._log_stats = log_stats
        self._inflight = inflight
        self._store_timings = store_timings

    def collect(self) -> Iterator[Metric]:
        instances = GaugeMetricFamily(
            "nova_instances",
            "Instances by state (ready, reloading, retired, starting) and sandbox backend",
            labels=("function", "version", "state", "backend"),
        )
        waiting = GaugeMetricFamily(
            "nova_pool_waiting",
            "Requests waiting for a free instance",
            labels=("function", "version"),
        )
        for pool in self._pools():
            backend = pool.backend or self._default_backend
            for state, count in pool.counts.items():
                if state == "waiting":
                    waiting.add_metric([pool.function, pool.version], count)
                else:
                    instances.add_metric([pool.function, pool.version, state, backend], count)
        yield instances
        yield waiting
        yield GaugeMetricFamily(
            "nova_inflight_invocations", "Invocations running now", value=self._inflight()
        )
        for name, value in self._counters().items():
            yield CounterMetricFamily(
                f"nova_daemon_{name}", f"This daemon's {name.replace('_', ' ')}", value=value
            )
        yield from _log_families(self._log_stats())
        timings = self._store_timings()
        yield HistogramMetricFamily(
            "nova_store_transaction_seconds",
            "Store transactions, from asking for a connection to commit (pool and lock waits "
            "included)",
            buckets=[
                *((str(bound), count) for bound, count in timings.buckets),
                ("+Inf", timings.count),
            ],
            sum_value=timings.sum_s,
        )


def _log_families(stats: LogStats) -> Iterator[Metric]:
    records = CounterMetricFamily(
        "nova_invocation_log_records",
        "Invocation-log records by what became of them: written to the store from memory, "
        "spooled to disk, replayed from the spool into the store, dropped",
        labels=("result",),
    )
    for result in ("written", "spooled", "replayed", "dropped"):
        records.add_metric([result], getattr(stats, result))
    yield records
    yield SummaryMetricFamily(
        "nova_invocation_log_batch_write_seconds",
        "Invocation-log batch writes to the store that succeeded, and their time",
        count_value=stats.batches_written,
        sum_value=stats.batch_write_seconds,
    )
    yield CounterMetricFamily(
        "nova_invocation_log_batches_failed",
        "Invocation-log batch writes the store did not take (their records were spooled)",
        value=stats.batches_failed,
    )
    yield GaugeMetricFamily(
        "nova_invocation_log_backlog", "Records not in the store yet", value=stats.backlog
    )
    yield GaugeMetricFamily(
        "nova_invocation_log_spool_bytes", "Bytes in the spool", value=stats.spool_bytes
    )
