"""Compiles a WebAssembly function ahead of time: ``python -I -m nova.runtimes.wasm_compile
MODULE EXPORT TARGET`` (the build of a ``wasm`` function, runtimes/toolchains.py).

It runs in its own process, as every compiler does, so a module that upsets the engine fails
its build, never the daemon. The module (binary ``.wasm`` or text ``.wat``) must export
``EXPORT`` as a function taking and returning nothing (a WASI command's ``_start``); it is
compiled, never run, with the settings Nova's WASI host (wrappers/nova_wasm.py) runs it with,
into ``TARGET``, which that host loads without compiling again.
"""

from __future__ import annotations

import sys
from pathlib import Path

import wasmtime


def engine() -> wasmtime.Engine:
    """Fuel metering on, as in the host: a module compiled without it would not load there."""
    config = wasmtime.Config()
    config.consume_fuel = True
    return wasmtime.Engine(config)


def compile_module(source: Path, export: str, target: Path) -> str:
    """Compile ``source`` into ``target``; a message saying what is wrong, else ''."""
    try:
        if source.suffix == ".wat":
            module = wasmtime.Module(engine(), source.read_text())
        else:
            module = wasmtime.Module(engine(), source.read_bytes())
    except wasmtime.WasmtimeError as exc:
        return f"{source.name} is not a valid WebAssembly module: {exc}"
    exports = {item.name: item.type for item in module.exports}
    kind = exports.get(export)
    if not isinstance(kind, wasmtime.FuncType) or kind.params or kind.results:
        names = ", ".join(sorted(exports)) or "none"
        return (
            f"{source.name} must export a function {export!r} taking and returning nothing "
            f"(a WASI command's _start); its exports: {names}"
        )
    target.write_bytes(module.serialize())
    return ""


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m nova.runtimes.wasm_compile MODULE EXPORT TARGET", file=sys.stderr)
        return 2
    problem = compile_module(Path(argv[0]), argv[1], Path(argv[2]))
    if problem:
        print(problem, file=sys.stderr)
        return 1
    print(f"compiled {argv[0]} (export {argv[1]}) with wasmtime")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
