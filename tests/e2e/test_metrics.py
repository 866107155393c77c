"""GET /metrics against a real daemon: parsed with Prometheus' own text parser, its counters and
histograms move with warm, cold, failing, timed-out and throttled invocations."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.daemon_process import DaemonProcess

CODE = """
import time

def handler(event, context):
    if event.get("fail"):
        raise ValueError("bad input")
    time.sleep(event.get("sleep", 0))
    return "ok"
"""
SECRET_EVENT_TEXT = "do-not-label-me-3f9a"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    # A request at max_replicas waits 0.3 s for a free instance, then gets 429.
    process = DaemonProcess(tmp_path / "data", env={"NOVA_POOL__QUEUE_TIMEOUT_S": "0.3"}).start()
    yield process
    process.stop()


def scrape(api: httpx.Client, path: str = "/metrics") -> Samples:
    response = api.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def invocations(samples: Samples, start: str, outcome: str) -> float:
    labels = {"function": "m", "version": "$LATEST", "start": start, "outcome": outcome}
    return value(samples, "nova_invocations_total", **labels)


def invoke(daemon: DaemonProcess, event: dict[str, float]) -> None:
    with daemon.client() as client:
        client.post("/functions/m/invoke", json=event)


def test_metrics_move_with_each_kind_of_invocation(daemon: DaemonProcess) -> None:
    with daemon.client() as api:
        function = {"runtime": "python", "code": CODE, "timeout_s": 1, "max_replicas": 1}
        before = value(scrape(api), "nova_store_transaction_seconds_count")
        api.post("/functions", json={"name": "m", **function}).raise_for_status()
        assert api.get("/metrics").status_code == 200  # before any invocation too
        stored = scrape(api)  # creating a function is store transactions, and timed
        assert value(stored, "nova_store_transaction_seconds_count") > before
        assert value(stored, "nova_store_transaction_seconds_sum") > 0

        ids = [api.post("/functions/m/invoke", json={}).json()["request_id"]]  # cold
        samples = scrape(api)
        assert invocations(samples, "cold", "success") == 1
        for phase in ("sandbox", "init", "execution"):
            labels = {"function": "m", "start": "cold", "phase": phase}
            assert value(samples, "nova_cold_start_phase_seconds_count", **labels) == 1
            assert value(samples, "nova_cold_start_phase_seconds_sum", **labels) > 0
        assert value(samples, "nova_pool_wait_seconds_count", function="m") == 1
        ready = {"function": "m", "version": "$LATEST", "state": "ready", "backend": "process"}
        assert value(samples, "nova_instances", **ready) == 1

        ids.append(
            api.post("/functions/m/invoke", json={"note": SECRET_EVENT_TEXT}).json()["request_id"]
        )
        failed = api.post("/functions/m/invoke", json={"fail": True}).json()
        assert failed["error"]["type"] == "ValueError"
        ids.append(failed["request_id"])
        samples = scrape(api)
        assert invocations(samples, "warm", "success") == 1
        assert invocations(samples, "warm", "error") == 1
        assert value(samples, "nova_invocation_errors_total", function="m", type="ValueError") == 1
        assert value(samples, "nova_invocation_timeouts_total", function="m") == 0
        warm = {"function": "m", "version": "$LATEST", "start": "warm", "outcome": "success"}
        buckets = [
            count
            for (name, labels), count in samples.items()
            if name == "nova_invocation_duration_seconds_bucket"
            and labels >= frozenset(warm.items())
        ]
        assert max(buckets) == 1 == value(samples, "nova_invocation_duration_seconds_count", **warm)

        timed_out = api.post("/functions/m/invoke", json={"sleep": 5}).json()
        assert timed_out["error"]["type"] == "Function.Timeout"
        samples = scrape(api)
        assert invocations(samples, "warm", "timeout") == 1
        assert value(samples, "nova_invocation_timeouts_total", function="m") == 1
        assert (
            value(samples, "nova_invocation_errors_total", function="m", type="Function.Timeout")
            == 1
        )

        # Throttled: the one instance max_replicas allows is busy past the queue timeout.
        api.post("/functions/m/invoke", json={}).raise_for_status()  # a new instance, warm again
        busy = threading.Thread(target=invoke, args=(daemon, {"sleep": 0.9}))
        busy.start()
        while value(scrape(api), "nova_inflight_invocations") < 1:
            time.sleep(0.01)
        throttled = api.post("/functions/m/invoke", json={})
        busy.join()
        assert throttled.status_code == 429
        samples = scrape(api, "/metrics/prometheus")
        assert value(samples, "nova_throttles_total", function="m", reason="concurrency") == 1
        assert value(samples, "nova_daemon_invocations_total") == 6

        # Labels hold no request id and nothing of an event.
        labels = {label for _, key in samples for _, label in key}
        assert not labels & set(ids)
        assert SECRET_EVENT_TEXT not in api.get("/metrics").text
        assert "process_cpu_seconds_total" in api.get("/metrics").text


def test_metrics_json_has_every_family(api: httpx.Client) -> None:
    api.post("/functions", json={"name": "j", "runtime": "python", "code": CODE}).raise_for_status()
    api.post("/functions/j/invoke", json={}).raise_for_status()
    families = api.get("/metrics/json").json()
    latency = families["nova_invocation_duration_seconds"]
    assert latency["type"] == "histogram"
    count = [s for s in latency["samples"] if s["name"] == "nova_invocation_duration_seconds_count"]
    assert count == [
        {
            "name": "nova_invocation_duration_seconds_count",
            "labels": {
                "function": "j",
                "version": "$LATEST",
                "start": "cold",
                "outcome": "success",
            },
            "value": 1.0,
        }
    ]
    assert families["nova_instances"]["type"] == "gauge"


def test_invocation_metrics_can_be_switched_off(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path / "data", env={"NOVA_METRICS__ENABLED": "false"}).start()
    try:
        with daemon.client() as api:
            api.post(
                "/functions", json={"name": "o", "runtime": "python", "code": CODE}
            ).raise_for_status()
            api.post("/functions/o/invoke", json={}).raise_for_status()
            samples = scrape(api)
        assert not [key for key in samples if key[0].startswith("nova_invocation_duration")]
        assert value(samples, "nova_daemon_invocations_total") == 1  # the daemon's state stays
    finally:
        daemon.stop()


def test_time_series_per_function_and_overall(daemon: DaemonProcess) -> None:
    with daemon.client() as api:
        api.post(
            "/functions", json={"name": "s", "runtime": "python", "code": CODE}
        ).raise_for_status()
        for event in ({}, {}, {"fail": True}):
            api.post("/functions/s/invoke", json=event).raise_for_status()

        hours = api.get("/functions/s/metrics").json()
        assert (hours["function"], hours["resolution"], len(hours["buckets"])) == ("s", "hour", 24)
        minutes = api.get("/metrics/timeseries", params={"resolution": "minute"}).json()
        assert (minutes["function"], len(minutes["buckets"])) == (None, 60)
        for body in (hours, minutes):
            buckets = body["buckets"]
            assert sum(b["invocations"] for b in buckets) == 3  # a boundary may split them
            assert sum(b["errors"] for b in buckets) == 1
            assert sum(b["cold_starts"] for b in buckets) == 1
            busy = [b for b in buckets if b["invocations"]]
            assert all(b["p95_ms"] is not None and b["p95_ms"] > 0 for b in busy)
            assert buckets == sorted(buckets, key=lambda b: b["start"])
        one = api.get("/metrics/timeseries", params={"function": "s"}).json()
        assert sum(b["invocations"] for b in one["buckets"]) == 3

        wrong = api.get("/metrics/timeseries", params={"resolution": "week"})
        assert wrong.status_code == 422
        assert "resolution" in wrong.json()["error"]["message"]
        assert api.get("/functions/nope/metrics").json()["error"]["code"] == "Function.NotFound"

    shown = daemon.cli("stats", "s")
    assert shown.returncode == 0, shown.stderr
    assert "INVOCATIONS" in shown.stdout
    assert "p95 latency" in shown.stdout


def test_slo_against_configured_targets(tmp_path: Path) -> None:
    env = {
        "NOVA_SLO__TARGETS__SUCCESS_RATE": "0.9",
        "NOVA_SLO__FUNCTIONS": '{"strict": {"success_rate": 0.999, "cold_start_ratio": 1}}',
    }
    daemon = DaemonProcess(tmp_path / "data", env=env).start()
    try:
        with daemon.client() as api:
            for name in ("lenient", "strict"):
                function = {"name": name, "runtime": "python", "code": CODE}
                api.post("/functions", json=function).raise_for_status()
                for event in [{}] * 9 + [{"fail": True}]:
                    api.post(f"/functions/{name}/invoke", json=event).raise_for_status()
            body = api.get("/slo", params={"window_s": 600}).json()
            assert api.get("/slo", params={"window_s": 10}).status_code == 422
            only = api.get("/slo", params={"function": "strict"}).json()["items"]
        shown = daemon.cli("slo", "--window", "10m")
    finally:
        daemon.stop()
    assert body["window_s"] == 600
    reports = {item["function"]: item for item in body["items"]}
    assert set(reports) == {"lenient", "strict"}
    lenient, strict = reports["lenient"], reports["strict"]
    assert (lenient["invocations"], lenient["errors"], lenient["success_rate"]) == (10, 1, 0.9)
    assert lenient["error_budget_left"] == 0.0  # one failure, exactly the one allowed
    assert lenient["cold_start_ratio"] == 0.1
    assert lenient["breaches"] == []  # 0.1 is the default cold-start target: met
    assert strict["targets"]["success_rate"] == 0.999
    assert strict["breaches"] == ["success_rate"]
    assert strict["error_budget_left"] < 0
    assert [item["function"] for item in only] == ["strict"]
    assert shown.returncode == 0, shown.stderr
    assert "missed: success_rate" in shown.stdout
