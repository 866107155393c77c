"""The canary loop against a store: it judges on stored invocation records and writes its
decisions into the alias's history, only against the revision it read."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from nova.canary.analyzer import CanaryAnalyzer
from nova.core.models import CodeBundle, CodeFile, FunctionConfig, InvocationLog
from nova.core.versions import CanaryPolicy, ChangeReason, VersionWeight
from nova.store.memory import MemoryStore

POLICY = CanaryPolicy(steps=(10, 50, 100), interval_s=0, window_s=60, min_samples=10)


async def _store_with_canary() -> tuple[MemoryStore, str, list[str]]:
    store = MemoryStore()
    config = FunctionConfig(name="fn", runtime="python", handler="handler.handler")
    record = await store.functions.create(config, CodeBundle({"handler.py": CodeFile(b"1")}))
    await store.versions.publish("fn", "")
    await store.functions.update("fn", config, CodeBundle({"handler.py": CodeFile(b"2")}))
    await store.versions.publish("fn", "")
    routing = (VersionWeight(1, 90), VersionWeight(2, 10))
    await store.aliases.put("fn", "prod", routing, policy=POLICY)
    return store, record.id, []


def _log(n: int, function_id: str, version: str, success: bool) -> InvocationLog:
    return InvocationLog(
        f"{version}-{n}", function_id, "fn", "python", version, "prod", 1.0, 1.0, False,
        success, None if success else "ValueError", None, 0, 0, "", "",
        datetime.now(UTC) + timedelta(milliseconds=n),
    )  # fmt: skip


async def test_a_failing_canary_is_rolled_back_with_its_numbers() -> None:
    store, function_id, refreshed = await _store_with_canary()
    logs = [_log(n, function_id, "1", True) for n in range(90)]
    logs += [_log(n, function_id, "2", n % 10 >= 3) for n in range(20)]  # 30 % fail
    await store.invocations.add_many(logs)

    async def refresh(name: str) -> None:
        refreshed.append(name)

    analyzer = CanaryAnalyzer(store, refresh, check_interval_s=60)
    await analyzer.analyse_all()

    alias = await store.aliases.get("fn", "prod")
    assert alias.routing == (VersionWeight(1, 100),)
    change = (await store.aliases.history("fn", "prod"))[0]
    assert change.reason is ChangeReason.AUTOMATIC
    assert change.detail["verdict"] == "rollback"
    assert change.detail["new"] == {
        "version": 2, "invocations": 20, "errors": 6, "error_rate": 0.3, "p95_ms": 1.0,
    }  # fmt: skip
    assert refreshed == ["fn"]
    assert analyzer.decisions == 1


async def test_a_healthy_canary_is_promoted_and_the_analysis_kept() -> None:
    store, function_id, _ = await _store_with_canary()
    await store.invocations.add_many(
        [_log(n, function_id, "1", True) for n in range(50)]
        + [_log(n, function_id, "2", True) for n in range(10)]
    )

    async def refresh(name: str) -> None:
        return None

    await CanaryAnalyzer(store, refresh, 60).analyse_all()
    alias = await store.aliases.get("fn", "prod")
    assert alias.routing == (VersionWeight(1, 50), VersionWeight(2, 50))
    assert alias.analysis is not None
    assert alias.analysis["verdict"] == "promote"


async def test_a_decision_on_a_stale_read_is_dropped() -> None:
    store, function_id, _ = await _store_with_canary()
    await store.invocations.add_many(
        [_log(n, function_id, "1", True) for n in range(50)]
        + [_log(n, function_id, "2", False) for n in range(10)]
    )
    stale = await store.aliases.get("fn", "prod")
    await store.aliases.put(
        "fn", "prod", (VersionWeight(1, 80), VersionWeight(2, 20)), policy=POLICY
    )

    async def refresh(name: str) -> None:
        return None

    analyzer = CanaryAnalyzer(store, refresh, 60)
    await analyzer.analyse(dataclasses.replace(stale))  # read before the person's change
    assert (await store.aliases.get("fn", "prod")).routing == (
        VersionWeight(1, 80),
        VersionWeight(2, 20),
    )
    assert analyzer.decisions == 0
