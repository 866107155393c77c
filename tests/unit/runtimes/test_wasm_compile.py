"""The ahead-of-time compile of a wasm function: a valid WASI command compiles to what the host
loads; an invalid module or a missing export fails saying why."""

from __future__ import annotations

from pathlib import Path

import wasmtime

from nova.runtimes import wasm_compile

COMMAND = '(module (func (export "_start")) (func (export "takes") (param i32)))'


def test_a_wasi_command_compiles_to_a_module_the_host_loads(tmp_path: Path) -> None:
    (tmp_path / "handler.wat").write_text(COMMAND)
    target = tmp_path / "function.cwasm"
    assert wasm_compile.compile_module(tmp_path / "handler.wat", "_start", target) == ""
    module = wasmtime.Module.deserialize_file(wasm_compile.engine(), str(target))
    assert [item.name for item in module.exports] == ["_start", "takes"]


def test_binary_modules_compile_too(tmp_path: Path) -> None:
    (tmp_path / "handler.wasm").write_bytes(wasmtime.wat2wasm(COMMAND))
    target = tmp_path / "function.cwasm"
    assert wasm_compile.main([str(tmp_path / "handler.wasm"), "_start", str(target)]) == 0
    assert target.stat().st_size > 0


def test_an_invalid_module_or_export_says_why(tmp_path: Path) -> None:
    (tmp_path / "bad.wat").write_text('(module (func (export "_start") (i32.add)))')
    said = wasm_compile.compile_module(tmp_path / "bad.wat", "_start", tmp_path / "out")
    assert said.startswith("bad.wat is not a valid WebAssembly module")
    (tmp_path / "handler.wat").write_text(COMMAND)
    said = wasm_compile.compile_module(tmp_path / "handler.wat", "takes", tmp_path / "out")
    assert "must export a function 'takes' taking and returning nothing" in said
    assert "its exports: _start, takes" in said
    assert not (tmp_path / "out").exists()
