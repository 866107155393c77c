"""Nova's host for WebAssembly functions: a Lambda Runtime API client that runs the function's
module once per event with wasmtime, inside the sandbox.

The ABI is a WASI (preview 1) command, the simplest one every WebAssembly toolchain emits: the
module's ``_start`` (or the export the handler names, taking and returning nothing) reads the event's JSON on stdin and writes the result's JSON on stdout; exit
status 0 is a result, any other status (or a trap) an error whose message is the module's
stderr (or the trap). Each event gets a fresh instance, so no state leaks between events, with
the memory limit of the function (``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``) and a fuel budget
(``WASM_FUEL`` instructions, else a billion per second of the function's timeout).

The build (nova.runtimes.wasm_compile) compiled the module ahead of time into ``function.cwasm``
with the same wasmtime and settings, so starting an instance compiles nothing where the sandbox
shows the host's CPU as it is.
"""

import http.client
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import wasmtime  # the copy beside this file, from the build

_TAIL = 4000  # characters of the module's stderr an error carries


def engine() -> "wasmtime.Engine":
    config = wasmtime.Config()
    config.consume_fuel = True
    return wasmtime.Engine(config)


def _request(
    address: str, method: str, path: str, body: bytes = b""
) -> "tuple[http.client.HTTPResponse, bytes]":
    connection = http.client.HTTPConnection(address)
    connection.request(method, path, body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    return response, response.read()


def _error(kind: str, message: str) -> bytes:
    return json.dumps({"errorType": kind, "errorMessage": message}).encode()


def _stderr(kept: bytearray, data: bytes) -> None:
    """The module's stderr goes to the function's log, and its tail into an error."""
    kept.extend(data)
    sys.stderr.buffer.write(data)


def run(
    module: "wasmtime.Module",
    linker: "wasmtime.Linker",
    export: str,
    event: bytes,
    fuel: int,
    memory_bytes: int,
) -> "tuple[bool, bytes]":
    """(True, the module's stdout) or (False, the error's JSON) for one event."""
    store = wasmtime.Store(linker.engine)
    store.set_fuel(fuel)
    store.set_limits(memory_size=memory_bytes)
    stdout, stderr = bytearray(), bytearray()
    with tempfile.NamedTemporaryFile() as stdin:
        stdin.write(event)
        stdin.flush()
        wasi = wasmtime.WasiConfig()
        wasi.argv = ["function"]
        wasi.stdin_file = stdin.name
        wasi.stdout_custom = stdout.extend
        wasi.stderr_custom = lambda data: _stderr(stderr, data)
        store.set_wasi(wasi)
        try:
            instance = linker.instantiate(store, module)
            start = instance.exports(store)[export]
            assert isinstance(start, wasmtime.Func)  # the build checked it
            start(store)
        except wasmtime.ExitTrap as exit_trap:
            if exit_trap.code != 0:
                said = stderr.decode(errors="replace")[-_TAIL:] or f"exit status {exit_trap.code}"
                return False, _error("Wasm.Exit", said.strip())
        except wasmtime.Trap as trap:
            kind = (
                "Wasm.OutOfFuel" if trap.trap_code == wasmtime.TrapCode.OUT_OF_FUEL else "Wasm.Trap"
            )
            return False, _error(kind, trap.message)
        except wasmtime.WasmtimeError as exc:
            return False, _error("Wasm.Error", str(exc))
    sys.stderr.flush()
    return True, bytes(stdout)


def _load(engine: "wasmtime.Engine", here: str, source: str) -> "wasmtime.Module":
    """The module compiled by the build, else compiled here from its source: the build's code
    is for the host's CPU, and a sandbox may hide some of its features (gVisor does)."""
    try:
        return wasmtime.Module.deserialize_file(engine, os.path.join(here, "function.cwasm"))
    except wasmtime.WasmtimeError as exc:
        print(f"nova: compiling {source} in the sandbox: {exc}".strip(), file=sys.stderr)
    path = os.path.join(here, source)
    if source.endswith(".wat"):
        with open(path) as text:
            return wasmtime.Module(engine, text.read())
    with open(path, "rb") as binary:
        return wasmtime.Module(engine, binary.read())


def main() -> None:
    address = os.environ["AWS_LAMBDA_RUNTIME_API"]
    here = os.path.dirname(os.path.abspath(__file__))
    export, source = sys.argv[1], sys.argv[2]  # as the bootstrap names them
    fuel = int(os.environ.get("WASM_FUEL") or float(os.environ.get("NOVA_TIMEOUT_S") or 30) * 1e9)
    memory_bytes = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") or 128) << 20
    linker = wasmtime.Linker(engine())
    linker.define_wasi()
    try:
        module = _load(linker.engine, here, source)
    except wasmtime.WasmtimeError as exc:
        _request(address, "POST", "/2018-06-01/runtime/init/error", _error("Wasm.Init", str(exc)))
        return
    while True:
        response, event = _request(address, "GET", "/2018-06-01/runtime/invocation/next")
        request_id = response.getheader("Lambda-Runtime-Aws-Request-Id", "")
        ok, body = run(module, linker, export, event, fuel, memory_bytes)
        outcome = "response" if ok else "error"
        _request(address, "POST", f"/2018-06-01/runtime/invocation/{request_id}/{outcome}", body)


if __name__ == "__main__":
    main()
