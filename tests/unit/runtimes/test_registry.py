"""Runtime detection: a runtime is available only when its check runs, else it says why."""

from __future__ import annotations

from nova.runtimes.registry import BUILTIN_RUNTIMES, RuntimeSpec, detect


def test_a_failing_version_check_lists_the_runtime_unavailable_with_its_output() -> None:
    spec = RuntimeSpec(
        "lang", ".x", "h.h", ("/bin/sh",), ("-c", "echo module socket not found >&2; exit 3")
    )
    status = detect(spec)
    assert status.available is False
    assert "module socket not found" in status.reason
    assert "make runtimes" in status.reason


def test_a_passing_version_check_reports_the_version() -> None:
    status = detect(RuntimeSpec("lang", ".x", "h.h", ("/bin/sh",), ("-c", "echo lang 1.2")))
    assert status.available is True
    assert status.version == "lang 1.2"


def test_a_missing_interpreter_says_what_was_tried() -> None:
    status = detect(RuntimeSpec("lang", ".x", "h.h", ("/nonexistent/lang",)))
    assert status.available is False
    assert "/nonexistent/lang" in status.reason


def test_zig_and_wasm_come_with_novas_wheels_with_their_versions() -> None:
    statuses = {spec.name: detect(spec) for spec in BUILTIN_RUNTIMES}
    assert statuses["zig"].available, statuses["zig"].reason
    assert statuses["zig"].interpreter is not None
    assert statuses["zig"].interpreter.endswith("ziglang/zig")
    assert statuses["zig"].version == "0.17.0"
    assert statuses["wasm"].available, statuses["wasm"].reason
    assert statuses["wasm"].version == "wasmtime 50.0.1"
    for name in ("swift", "dotnet"):
        assert not statuses[name].available
        assert "Debian 12, PyPI or npm" in statuses[name].reason
