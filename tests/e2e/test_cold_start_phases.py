"""A cold invocation's phases (sandbox, runtime, handler init, first execution) account for its
total time, land in its invocation record, the metrics and `nova logs --verbose`."""

from __future__ import annotations

import time
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.daemon_process import DaemonProcess

SLOW_IMPORT_S = 0.4
CODE = f"""
import time
time.sleep({SLOW_IMPORT_S})  # module-level work: the handler's init

def handler(event, context):
    time.sleep(0.05)
    return "ok"
"""
PHASES = ("sandbox_ms", "code_ms", "runtime_ms", "init_ms")


def logs_when(api: httpx.Client, path: str, count: int) -> list[dict[str, Any]]:
    """The log records at ``path`` once there are ``count`` (they are written in batches)."""
    deadline = time.monotonic() + 10
    while True:
        items: list[dict[str, Any]] = api.get(path).json()["items"]
        if len(items) >= count or time.monotonic() > deadline:
            return items
        time.sleep(0.1)


def phase_sums(api: httpx.Client) -> dict[str, float]:
    return {
        sample.labels["phase"]: sample.value
        for family in text_string_to_metric_families(api.get("/metrics").text)
        for sample in family.samples
        if sample.name == "nova_cold_start_phase_seconds_sum"
        and sample.labels["function"] == "slow"
    }


def test_phases_add_up_to_the_total(daemon: DaemonProcess, api: httpx.Client) -> None:
    api.post(
        "/functions", json={"name": "slow", "runtime": "python", "code": CODE}
    ).raise_for_status()
    result = api.post("/functions/slow/invoke", json={}).json()
    assert result["start"] == "cold"
    phases = result["phases"]
    assert phases["init_ms"] >= SLOW_IMPORT_S * 1000  # the module-level sleep is handler init
    assert phases["sandbox_ms"] > 0
    assert phases["code_ms"] > 0  # its own copy of the code, timed apart from the sandbox
    assert phases["runtime_ms"] > 0
    measured = sum(phases[key] or 0.0 for key in PHASES) + result["duration_ms"]
    total = result["total_ms"]
    # The phases happen inside the total; what is left is the request's own dispatch.
    assert measured <= total
    assert total - measured <= max(50.0, 0.2 * total)

    warm = api.post("/functions/slow/invoke", json={}).json()
    assert (warm["start"], warm["phases"]) == ("warm", None)

    records = logs_when(api, "/functions/slow/logs", 2)
    record = next(item for item in records if item["id"] == result["request_id"])
    assert {key: record[key] for key in PHASES} == phases
    assert record["duration_ms"] == result["duration_ms"]

    sums = phase_sums(api)
    assert round(sums["init"] * 1000, 3) == phases["init_ms"]
    assert round(sums["sandbox"] * 1000, 3) == phases["sandbox_ms"]
    assert round(sums["code"] * 1000, 3) == phases["code_ms"]
    assert round(sums["execution"] * 1000, 3) == result["duration_ms"]

    shown = daemon.cli("logs", "slow", "--verbose")
    assert shown.returncode == 0, shown.stderr
    start_lines = [line for line in shown.stdout.splitlines() if "start |" in line]
    assert len(start_lines) == 1  # the cold one; warm invocations have no start phases
    assert f"init {phases['init_ms']:.1f} ms" in start_lines[0]
