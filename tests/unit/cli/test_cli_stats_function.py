"""`nova stats NAME`: a function's hourly (or per-minute) buckets as a table and a chart."""

from __future__ import annotations

import json
from typing import Any

from nova.cli.exit_codes import ExitCode

from .fakes import FakeApi, RunNova


def bucket(hour: int, invocations: int, p95: float | None) -> dict[str, Any]:
    return {
        "start": f"2026-12-05T{hour:02d}:00:00+00:00",
        "invocations": invocations,
        "errors": 1 if invocations else 0,
        "cold_starts": 0,
        "p50_ms": p95 and p95 / 2,
        "p95_ms": p95,
        "p99_ms": p95,
        "warm_p95_ms": p95,
        "cold_p95_ms": None,
    }


SERIES = {
    "function": "hello",
    "resolution": "hour",
    "buckets": [
        bucket(20, 0, None),
        bucket(21, 10, 40.0),
        bucket(22, 0, None),
        bucket(23, 20, 10.0),
    ],
}


def test_stats_name_shows_busy_hours_and_a_chart(nova: RunNova, api: FakeApi) -> None:
    api.on("GET", "/functions/hello/metrics", SERIES)

    result = nova("stats", "hello")

    assert result.exit_code == ExitCode.OK, result.output
    assert dict(api.last.url.params) == {"resolution": "hour"}
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["START", "INVOCATIONS", "ERRORS", "COLD", "P50", "P95", "P99"]
    assert lines[1].split() == [
        "12-05",
        "21:00",
        "10",
        "1",
        "0",
        "20.0",
        "ms",
        "40.0",
        "ms",
        "40.0",
        "ms",
    ]
    assert lines[2].split()[:3] == ["12-05", "23:00", "20"]
    assert "invocations   ▅ █" in result.stdout  # half of the largest, then the largest
    assert "p95 latency   █ ▃" in result.stdout  # a quarter


def test_stats_name_minutes_and_json(nova: RunNova, api: FakeApi) -> None:
    api.on("GET", "/functions/hello/metrics", {**SERIES, "resolution": "minute"})
    assert nova("stats", "hello", "--minutes").exit_code == ExitCode.OK
    assert dict(api.last.url.params) == {"resolution": "minute"}
    assert json.loads(nova("--json", "stats", "hello").stdout)["buckets"][1]["invocations"] == 10


def test_stats_name_without_invocations_says_so(nova: RunNova, api: FakeApi) -> None:
    api.on("GET", "/functions/hello/metrics", {**SERIES, "buckets": [bucket(1, 0, None)]})
    result = nova("stats", "hello")
    assert result.exit_code == ExitCode.OK
    assert "no invocations of hello in the last 24 hours" in result.stderr
