"""Compile state survives a daemon restart: a failed update after a good build keeps serving the
good build, with compile_status failed and the compiler's output, read from the store when the
daemon's disk no longer has the log (Zig, whose toolchain pyproject installs)."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.daemon_process import DaemonProcess
from tests.e2e.zig_wasm_cases import invoke, settled

SAYS = (
    'const std = @import("std");\n\n'
    "pub fn handler(allocator: std.mem.Allocator, event: []const u8) ![]const u8 {\n"
    "    _ = allocator;\n    _ = event;\n"
    '    return "{\\"says\\":\\"one\\"}";\n}\n'
)
BROKEN = SAYS.replace("return", "retur")


def test_a_failed_update_keeps_serving_the_good_build_after_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = DaemonProcess(data).start()
    try:
        with first.client() as api:
            body = {"name": "word", "runtime": "zig", "files": {"handler.zig": SAYS}}
            api.post("/functions", json=body).raise_for_status()
            built = settled(api, "word")  # a fresh data dir's first Zig build compiles musl
            assert built["compile_status"] == "success", built
            assert invoke(api, "word", {})["output"] == {"says": "one"}
            api.patch("/functions/word", json={"files": {"handler.zig": BROKEN}})
            failed = settled(api, "word")
            assert failed["compile_status"] == "failed", failed
    finally:
        first.stop()

    for log in (data / "compiled").glob("*.log"):
        if "retur" in log.read_text():
            log.unlink()  # this disk forgot the failure: the store still knows it
    second = DaemonProcess(data).start()
    try:
        with second.client() as api:
            record = api.get("/functions/word").json()
            assert record["compile_status"] == "failed", record
            assert "handler.zig:" in record["compile_output"], record["compile_output"]
            shown = second.cli("fn", "build-log", "word")
            assert "handler.zig:" in shown.stdout, shown
            assert invoke(api, "word", {})["output"] == {"says": "one"}
            assert api.get("/functions/word").json()["compile_status"] == "failed"
        listed = second.cli("runtimes")
        assert listed.returncode == 0, listed.stderr
        rows = {line.split()[0]: line for line in listed.stdout.splitlines() if line.strip()}
        assert "yes" in rows["zig"], rows["zig"]
        assert "0.17.0" in rows["zig"]
        assert "yes" in rows["wasm"], rows["wasm"]
        assert "wasmtime 50.0.1" in rows["wasm"]
        assert "Debian 12, PyPI or npm" in listed.stdout  # swift and dotnet say why not
    finally:
        second.stop()
