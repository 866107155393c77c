"""deploy/: the alert rules and the Grafana dashboard query only metrics Nova exports, and the
compose file mounts files that exist."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from nova.core.models import StartPhases
from nova.observability.daemon_metrics import DaemonCollector, PoolSample
from nova.observability.invocation_logs import LogStats
from nova.observability.metrics import InvocationMetrics, Outcome
from nova.observability.prometheus import MetricsRegistry
from nova.store.timings import TransactionTimings

DEPLOY = Path(__file__).parents[2] / "deploy"
METRIC = re.compile(r"\b((?:nova|process)_[a-z_]+)\b")


def exported_names() -> set[str]:
    """Every sample name a daemon that served one invocation of each kind exports."""
    metrics = InvocationMetrics([0.1, 1.0], [0.1, 1.0], 5)
    metrics.invocation("f", "$LATEST", "cold", Outcome.ERROR, 0.5)
    metrics.invocation("f", "$LATEST", "warm", Outcome.TIMEOUT, 0.5)
    metrics.error("f", "ValueError")
    metrics.throttled("f", "concurrency")
    metrics.pool_wait("f", 0.2)
    metrics.cold_start("f", "cold", StartPhases(1.0, 1.0, 1.0, 1.0), 1.0)
    stats = LogStats(1, 0, 0, 0, 0, 0, store_ok=True, spool_ok=True)
    daemon = DaemonCollector(
        lambda: [PoolSample("f", "$LATEST", None, {"ready": 1, "waiting": 0})],
        "process",
        lambda: {"invocations": 2},
        lambda: stats,
        lambda: 0,
        TransactionTimings().snapshot,
    )
    text = MetricsRegistry([metrics, daemon]).text().decode()
    return {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }


def queried(expressions: list[str]) -> set[str]:
    return {name for expression in expressions for name in METRIC.findall(expression)}


def test_alert_rules_use_exported_metrics() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    names = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert {"NovaErrorBudgetBurnFast", "NovaColdStartRatioHigh", "NovaThrottling"} <= names
    used = queried(expressions)
    assert used
    assert used <= exported_names()


def test_dashboard_panels_use_exported_metrics() -> None:
    dashboard: dict[str, Any] = json.loads(
        (DEPLOY / "grafana" / "dashboards" / "nova.json").read_text()
    )
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = queried(expressions)
    assert {
        "nova_invocation_duration_seconds_bucket",
        "nova_cold_start_phase_seconds_bucket",
    } <= used
    assert used <= exported_names()
    variable = dashboard["templating"]["list"][0]["definition"]
    assert queried([variable]) <= exported_names()


def test_compose_mounts_what_is_in_the_repository() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert set(compose["services"]) == {"nova", "prometheus", "grafana"}
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert (DEPLOY / source).exists(), volume
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert prometheus["rule_files"] == ["/etc/prometheus/alerts.yml"]
    assert prometheus["scrape_configs"][0]["static_configs"][0]["targets"] == ["nova:9000"]
