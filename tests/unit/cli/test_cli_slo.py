"""`nova slo`: each function's measurements against its targets, and the budget left."""

from __future__ import annotations

import json

import pytest

from nova.cli.exit_codes import ExitCode

from .fakes import FakeApi, RunNova

TARGETS = {
    "success_rate": 0.999,
    "warm_p95_ms": 100.0,
    "cold_p95_ms": 3000.0,
    "cold_start_ratio": 0.1,
}
SLO = {
    "window_s": 3600,
    "items": [
        {
            "function": "hello",
            "invocations": 1000,
            "errors": 2,
            "success_rate": 0.998,
            "warm_p95_ms": 12.5,
            "cold_p95_ms": None,
            "cold_start_ratio": 0.001,
            "targets": TARGETS,
            "errors_allowed": 1.0,
            "error_budget_left": -1.0,
            "breaches": ["success_rate"],
            "met": False,
        }
    ],
    "next": None,
}


def test_slo_table(nova: RunNova, api: FakeApi) -> None:
    api.on("GET", "/slo", SLO)
    result = nova("slo")
    assert result.exit_code == ExitCode.OK, result.output
    assert dict(api.last.url.params) == {}
    row = result.stdout.splitlines()[1]
    assert row.split()[:2] == ["hello", "1000"]
    assert "99.80 % / 99.90 %" in row
    assert "12.5 ms / 100.0 ms" in row
    assert "- / 3000.0 ms" in row
    assert "-100.00 %" in row
    assert row.endswith("missed: success_rate")
    assert json.loads(nova("--json", "slo").stdout) == SLO


@pytest.mark.parametrize(("window", "seconds"), [("30m", "1800"), ("24h", "86400"), ("90", "90")])
def test_slo_window_and_function(nova: RunNova, api: FakeApi, window: str, seconds: str) -> None:
    api.on("GET", "/slo", SLO)
    assert nova("slo", "hello", "--window", window).exit_code == ExitCode.OK
    assert dict(api.last.url.params) == {"window_s": seconds, "function": "hello"}


def test_slo_rejects_a_window_that_is_no_duration(nova: RunNova, api: FakeApi) -> None:
    result = nova("slo", "--window", "soon")
    assert result.exit_code == ExitCode.USAGE
    assert "30m, 1h or 24h" in result.output
    assert api.requests == []
