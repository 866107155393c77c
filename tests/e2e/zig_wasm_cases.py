"""Zig and WebAssembly functions end to end, shared by the backends' test modules: builds,
answers, errors, compile failures, and the WASI host's fuel and memory limits."""

from __future__ import annotations

import importlib.util
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from tests.zips import zip_bytes

EXAMPLES = Path(__file__).parents[2] / "examples"
# Echoes the event: one fd_read of stdin into memory, one fd_write of it to stdout.
ECHO_WAT = """(module
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 60000))
    (drop (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
    (i32.store (i32.const 4) (i32.load (i32.const 8)))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"""
SPIN_WAT = '(module (func (export "_start") (loop $forever (br $forever))))\n'
# Grows its memory by 2100 pages of 64 KiB (131 MiB, past a 128 MB function's limit) and says
# whether that was refused (memory.grow gives -1) or not.
GROW_WAT = """(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "\\"refused\\"\\"grew\\"")
  (func (export "_start")
    (if (i32.eq (memory.grow (i32.const 2100)) (i32.const -1))
      (then (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 9)))
      (else (i32.store (i32.const 0) (i32.const 25)) (i32.store (i32.const 4) (i32.const 6))))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"""


def settled(api: httpx.Client, name: str) -> dict[str, Any]:
    """The function once its build has ended (success or failed)."""
    deadline = time.monotonic() + 300  # a first Zig build compiles musl
    while True:
        record: dict[str, Any] = api.get(f"/functions/{name}").json()
        if record["compile_status"] in ("success", "failed") or time.monotonic() > deadline:
            return record
        time.sleep(0.2)


def invoke(api: httpx.Client, name: str, event: Any) -> dict[str, Any]:
    response = api.post(f"/functions/{name}/invoke", json=event)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def available(api: httpx.Client) -> dict[str, dict[str, Any]]:
    runtimes = {item["name"]: item for item in api.get("/runtimes").json()["items"]}
    for name in ("zig", "wasm"):
        assert runtimes[name]["available"], runtimes[name]  # pyproject installs both
        assert runtimes[name]["version"], runtimes[name]
    return runtimes


def zig_function_answers_and_fails_clearly(api: httpx.Client, prefix: str) -> None:
    example = (EXAMPLES / "zig" / "handler.zig").read_text()
    body = {"name": f"{prefix}-zig", "runtime": "zig", "files": {"handler.zig": example}}
    api.post("/functions", json=body).raise_for_status()
    assert settled(api, f"{prefix}-zig")["compile_status"] == "success"
    for _ in range(2):  # the cold start, then the warm instance
        assert invoke(api, f"{prefix}-zig", {"name": "nova"})["output"] == {"hi": "nova"}
    error = invoke(api, f"{prefix}-zig", {"other": 1})["error"]
    assert error["type"] == "Zig.Error", error
    assert error["message"] == "NoName"

    broken = {"handler.zig": example.replace("return std.fmt", "retur std.fmt")}
    body = {"name": f"{prefix}-zig-broken", "runtime": "zig", "files": broken}
    api.post("/functions", json=body).raise_for_status()
    record = settled(api, f"{prefix}-zig-broken")
    assert record["compile_status"] == "failed", record
    assert "handler.zig:" in record["compile_output"], record["compile_output"]


def wasm_module_from_c(tmp_path: Path) -> bytes:
    """The C example built to a WASI command by the Zig that Nova's wheel ships."""
    spec = importlib.util.find_spec("ziglang")
    assert spec is not None, "pyproject installs ziglang"
    assert spec.origin is not None
    zig = Path(spec.origin).parent / "zig"
    target = tmp_path / "handler.wasm"
    command = [str(zig), "cc", "-target", "wasm32-wasi", "-Os", "-o", str(target)]
    command += [str(EXAMPLES / "wasm" / "handler.c")]
    env = {"ZIG_GLOBAL_CACHE_DIR": str(tmp_path / "zig-cache"), "HOME": str(tmp_path)}
    subprocess.run(command, check=True, capture_output=True, timeout=600, env=env)
    return target.read_bytes()


def wasm_functions_answer_within_their_limits(
    api: httpx.Client, prefix: str, tmp_path: Path
) -> None:
    name = f"{prefix}-wasm-c"
    meta = f'{{"name": "{name}", "runtime": "wasm"}}'
    archive = zip_bytes({"handler.wasm": wasm_module_from_c(tmp_path)})
    created = api.post(
        "/functions", files={"meta": (None, meta), "zip": ("code.zip", archive, "application/zip")}
    )
    assert created.status_code == 201, created.text
    for _ in range(2):
        assert invoke(api, name, {"name": "nova"})["output"] == {"hi": "nova"}
    error = invoke(api, name, {"other": 1})["error"]
    assert error == {**error, "type": "Wasm.Exit", "message": "the event has no name"}, error

    files = {"echo": ECHO_WAT, "spin": SPIN_WAT, "grow": GROW_WAT}
    for suffix, text in files.items():
        body = {
            "name": f"{prefix}-wasm-{suffix}",
            "runtime": "wasm",
            "files": {"handler.wat": text},
            "env": {"WASM_FUEL": "1000000"},
        }
        api.post("/functions", json=body).raise_for_status()
    assert invoke(api, f"{prefix}-wasm-echo", {"a": [1]})["output"] == {"a": [1]}
    spun = invoke(api, f"{prefix}-wasm-spin", {})["error"]
    assert spun["type"] == "Wasm.OutOfFuel", spun
    assert invoke(api, f"{prefix}-wasm-grow", {})["output"] == "refused"


def wasm_build_failures_say_why(api: httpx.Client, prefix: str) -> None:
    cases = {
        "invalid": ('(module (func (export "_start") (i32.add)))', "not a valid WebAssembly"),
        "noexport": ('(module (func (export "run")))', "must export a function '_start'"),
    }
    for suffix, (text, said) in cases.items():
        name = f"{prefix}-wasm-{suffix}"
        body = {"name": name, "runtime": "wasm", "files": {"handler.wat": text}}
        api.post("/functions", json=body).raise_for_status()
        record = settled(api, name)
        assert record["compile_status"] == "failed", record
        assert said in record["compile_output"], record["compile_output"]
        error = api.post(f"/functions/{name}/invoke", json={}).json()["error"]
        assert error["code"] == "Function.CompileFailed", error
