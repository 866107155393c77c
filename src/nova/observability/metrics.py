"""Invocation metrics: plain counts on the hot path, Prometheus families at scrape time.

An invocation costs a tuple, a dict lookup, a bisect and three integer additions here; the
``prometheus_client`` metric objects (a lock per child, a label check per call) are built only
when someone scrapes. One event loop bumps the counts and the same loop serves the scrape, so
nothing is locked.

Labels are bounded: function and version (what is deployed), the start kind and outcome (a few
words each), an error type (at most ``max_error_types`` per function; the rest count as
``other``), a cold-start phase. Never a request id, an event or an error message.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from nova.core.models import StartPhases
from nova.observability.timeseries import InvocationSeries

OTHER_ERROR_TYPE = "other"
_MAX_LABEL_CHARS = 64
# The phases of a non-warm start, in the order they happen; "execution" is the first run.
PHASES: tuple[str, ...] = ("sandbox", "code", "runtime", "init", "execution")


_COLD_STARTS = ("cold", "snapshot", "prestarted")  # the invocation waited for its instance to start


class Outcome:
    """How an invocation ended, as the ``outcome`` label says it."""

    SUCCESS = "success"
    ERROR = "error"  # the function failed (its exception, a crash, out of memory)
    TIMEOUT = "timeout"  # it ran past its timeout and was stopped


@dataclass(slots=True)
class _Series:
    """One histogram series: per-bucket counts (not cumulative; the last is +Inf) and the sum."""

    buckets: list[int]
    total: float = 0.0


@dataclass(slots=True)
class _Histogram:
    bounds: tuple[float, ...]
    series: dict[tuple[str, ...], _Series] = field(default_factory=dict)

    def observe(self, key: tuple[str, ...], value: float) -> None:
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = _Series([0] * (len(self.bounds) + 1))
        series.buckets[bisect_left(self.bounds, value)] += 1
        series.total += value

    def family(self, name: str, documentation: str, labels: Sequence[str]) -> Metric:
        family = HistogramMetricFamily(name, documentation, labels=labels)
        for key, series in self.series.items():
            cumulative, running = [], 0
            for bound, count in zip((*self.bounds, float("inf")), series.buckets, strict=True):
                running += count
                cumulative.append((_le(bound), running))
            family.add_metric(list(key), cumulative, series.total)
        return family


class InvocationMetrics:
    """What the executor counts per invocation; ``collect`` makes the Prometheus families."""

    def __init__(
        self,
        latency_buckets_s: Sequence[float],
        cold_start_buckets_s: Sequence[float],
        max_error_types: int,
    ) -> None:
        self.series = InvocationSeries()  # the per-minute and per-hour view
        self._latency = _Histogram(tuple(latency_buckets_s))
        self._pool_wait = _Histogram(tuple(latency_buckets_s))
        self._phases = _Histogram(tuple(cold_start_buckets_s))
        self._max_error_types = max_error_types
        self._errors: dict[tuple[str, str], int] = {}
        self._error_types: dict[str, set[str]] = {}  # per function: the types given a label
        self._throttles: dict[tuple[str, str], int] = {}

    # -- the hot path ----------------------------------------------------------------------------

    def invocation(
        self, function: str, version: str, start: str, outcome: str, seconds: float
    ) -> None:
        self._latency.observe((function, version, start, outcome), seconds)
        self.series.record(function, seconds, outcome == Outcome.SUCCESS, start in _COLD_STARTS)

    def error(self, function: str, error_type: str) -> None:
        key = (function, self._error_label(function, error_type))
        self._errors[key] = self._errors.get(key, 0) + 1

    def cold_start(
        self, function: str, start: str, phases: StartPhases, execution_ms: float
    ) -> None:
        """A non-warm invocation's start phases (those measured) and its first execution."""
        for phase, ms in zip(PHASES, (*_phase_values(phases), execution_ms), strict=True):
            if ms is not None:
                self._phases.observe((function, start, phase), ms / 1000)

    def pool_wait(self, function: str, seconds: float) -> None:
        self._pool_wait.observe((function,), seconds)

    def throttled(self, function: str, reason: str) -> None:
        key = (function, reason)
        self._throttles[key] = self._throttles.get(key, 0) + 1

    def _error_label(self, function: str, error_type: str) -> str:
        known = self._error_types.setdefault(function, set())
        if error_type in known:
            return error_type
        if len(known) >= self._max_error_types or len(error_type) > _MAX_LABEL_CHARS:
            return OTHER_ERROR_TYPE
        known.add(error_type)
        return error_type

    # -- the scrape ------------------------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        labels = ("function", "version", "start", "outcome")
        yield self._latency.family(
            "nova_invocation_duration_seconds",
            "Invocation latency as the daemon saw it (queueing and any cold start included)",
            labels,
        )
        invocations = CounterMetricFamily(
            "nova_invocations", "Invocations that ran, by how they started and ended", labels=labels
        )
        timeouts: dict[str, int] = {}
        for key, series in self._latency.series.items():
            count = sum(series.buckets)
            invocations.add_metric(list(key), count)
            if key[3] == Outcome.TIMEOUT:
                timeouts[key[0]] = timeouts.get(key[0], 0) + count
        yield invocations
        yield _counter(
            "nova_invocation_timeouts",
            "Invocations stopped at their timeout",
            ("function",),
            [((name,), count) for name, count in timeouts.items()],
        )
        yield _counter(
            "nova_invocation_errors",
            f"Failed invocations by error type (past {self._max_error_types} types per "
            f"function: {OTHER_ERROR_TYPE!r})",
            ("function", "type"),
            self._errors.items(),
        )
        yield _counter(
            "nova_throttles",
            "Invocations refused with 429 (concurrency: at max_replicas with the queue full "
            "or the queue timeout passed; environment: its max_concurrency quota reached)",
            ("function", "reason"),
            self._throttles.items(),
        )
        yield self._phases.family(
            "nova_cold_start_phase_seconds",
            "Where a non-warm invocation's start went: sandbox, code, runtime, init, and its "
            "first execution",
            ("function", "start", "phase"),
        )
        yield self._pool_wait.family(
            "nova_pool_wait_seconds",
            "How long invocations that found no free instance waited for one",
            ("function",),
        )


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


def _phase_values(phases: StartPhases) -> tuple[float | None, ...]:
    return (phases.sandbox_ms, phases.code_ms, phases.runtime_ms, phases.init_ms)


def _counter(
    name: str,
    documentation: str,
    labels: Sequence[str],
    values: Iterable[tuple[tuple[str, ...], int]],
) -> Metric:
    family = CounterMetricFamily(name, documentation, labels=labels)
    for key, value in values:
        family.add_metric(list(key), value)
    return family
