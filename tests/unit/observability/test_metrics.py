"""InvocationMetrics: the families it yields at scrape time, parsed as Prometheus parses them."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from nova.core.models import StartPhases
from nova.observability.metrics import InvocationMetrics, Outcome
from nova.observability.prometheus import MetricsRegistry


def scrape(metrics: InvocationMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = MetricsRegistry([metrics]).text().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_latency_lands_in_the_first_bucket_at_or_above_it() -> None:
    metrics = InvocationMetrics([0.01, 0.1, 1.0], [1.0], 5)
    for seconds in (0.01, 0.05, 2.0):
        metrics.invocation("f", "$LATEST", "warm", Outcome.SUCCESS, seconds)
    samples = scrape(metrics)
    series = {"function": "f", "version": "$LATEST", "start": "warm", "outcome": "success"}
    name = "nova_invocation_duration_seconds_bucket"
    buckets = [value(samples, name, **series, le=le) for le in ("0.01", "0.1", "1.0", "+Inf")]
    assert buckets == [1, 2, 2, 3]  # le is inclusive; 2 s is only in +Inf
    assert value(samples, "nova_invocation_duration_seconds_count", **series) == 3
    assert value(samples, "nova_invocation_duration_seconds_sum", **series) == 2.06
    assert value(samples, "nova_invocations_total", **series) == 3


def test_timeouts_are_counted_per_function_from_the_outcome() -> None:
    metrics = InvocationMetrics([1.0], [1.0], 5)
    metrics.invocation("f", "1", "warm", Outcome.TIMEOUT, 3.0)
    metrics.invocation("f", "2", "cold", Outcome.TIMEOUT, 3.0)
    metrics.invocation("f", "2", "cold", Outcome.ERROR, 3.0)
    assert value(scrape(metrics), "nova_invocation_timeouts_total", function="f") == 2


def test_error_types_past_the_limit_share_one_label() -> None:
    metrics = InvocationMetrics([1.0], [1.0], max_error_types=2)
    for error_type in ("A", "B", "C", "D", "A", "X" * 200):
        metrics.error("f", error_type)
    metrics.error("g", "C")  # the limit is per function
    samples = scrape(metrics)
    errors = {
        labels: count
        for (name, labels), count in samples.items()
        if name == "nova_invocation_errors_total"
    }
    assert errors == {
        (("function", "f"), ("type", "A")): 2,
        (("function", "f"), ("type", "B")): 1,
        (("function", "f"), ("type", "other")): 3,
        (("function", "g"), ("type", "C")): 1,
    }


def test_cold_start_phases_observe_only_what_was_measured() -> None:
    metrics = InvocationMetrics([1.0], [0.01, 1.0], 5)
    metrics.cold_start("f", "cold", StartPhases(sandbox_ms=5.0, init_ms=40.0), execution_ms=2.0)
    samples = scrape(metrics)
    name = "nova_cold_start_phase_seconds_count"
    counts = {
        phase: value(samples, name, function="f", start="cold", phase=phase)
        for phase in ("sandbox", "code", "runtime", "init", "execution")
    }
    assert counts == {"sandbox": 1, "code": 0, "runtime": 0, "init": 1, "execution": 1}
    sandbox_sum = value(
        samples, "nova_cold_start_phase_seconds_sum", function="f", start="cold", phase="sandbox"
    )
    assert sandbox_sum == 0.005


def test_throttles_and_pool_waits() -> None:
    metrics = InvocationMetrics([0.1, 1.0], [1.0], 5)
    metrics.throttled("f", "concurrency")
    metrics.pool_wait("f", 0.5)
    samples = scrape(metrics)
    assert value(samples, "nova_throttles_total", function="f", reason="concurrency") == 1
    assert value(samples, "nova_pool_wait_seconds_bucket", function="f", le="0.1") == 0
    assert value(samples, "nova_pool_wait_seconds_bucket", function="f", le="1.0") == 1
