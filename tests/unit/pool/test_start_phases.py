"""How a start's wall time is split into phases from the launcher's clock and the agent's."""

from __future__ import annotations

from nova.pool.launcher import start_phases


def test_the_agents_init_time_is_handler_init_and_the_rest_runtime_start() -> None:
    phases = start_phases(10.0, 10.5, 11.0, {"ok": True, "init_ms": 300.0})
    assert (phases.sandbox_ms, phases.runtime_ms, phases.init_ms) == (500.0, 200.0, 300.0)
    assert phases.code_ms is None


def test_an_agent_init_longer_than_the_wait_is_capped_at_it() -> None:
    phases = start_phases(0.0, 1.0, 1.1, {"init_ms": 250})
    assert (phases.runtime_ms, phases.init_ms) == (0.0, 100.0)


def test_a_restored_snapshot_has_no_handler_init() -> None:
    phases = start_phases(0.0, 0.25, 0.5, {"ok": True})
    assert (phases.sandbox_ms, phases.runtime_ms, phases.init_ms) == (250.0, 250.0, None)


def test_placing_the_code_is_reported_apart_from_the_sandbox_start() -> None:
    phases = start_phases(10.0, 10.5, 11.0, {"init_ms": 300.0}, code_ms=120.0)
    assert (phases.sandbox_ms, phases.code_ms) == (380.0, 120.0)
    assert (phases.runtime_ms, phases.init_ms) == (200.0, 300.0)
