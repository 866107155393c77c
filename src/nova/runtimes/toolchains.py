"""How each compiled language turns a function's source into a ``bootstrap``.

Every compiled language runs as a ``provided`` bootstrap (agent/provided.py) rather than through
a worker protocol of its own: the Lambda Runtime API is plain HTTP and JSON, which each of these
standard libraries speaks, so one small main per language (wrappers/) is all Nova ships. That
main is compiled into the function's own program and calls the handler the function's
``handler`` field names, so users write only a handler, never a Runtime API client, and no
library has to be fetched at build time.

A toolchain's ``prepare`` writes its main (and what else the compiler needs) into the build's
copy of the source and returns the command that writes the ``bootstrap`` into ``output``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nova.code import bundle as bundles
from nova.code.cache import link_tree

WRAPPERS = Path(__file__).parent / "wrappers"
BOOTSTRAP = "bootstrap"


def _wrappers_digest() -> str:
    """What Nova compiles into every program: a new Nova main builds functions anew."""
    digest = hashlib.sha256()
    for path in sorted(WRAPPERS.iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


WRAPPERS_DIGEST = _wrappers_digest()


@dataclass(frozen=True, slots=True)
class BuildCommand:
    argv: list[str]
    env: dict[str, str]  # added to a minimal environment (PATH, HOME, LANG)


@dataclass(frozen=True, slots=True)
class BuildInputs:
    source: Path  # a writable copy of the function's code; the compiler runs here
    output: Path  # where the bootstrap (and anything it needs) goes
    handler: str  # the function's handler field: module.function
    compiler: str  # the toolchain's path (GET /runtimes shows it)
    cache: Path  # the toolchain's own cache, shared by every build on this daemon


def _parts(handler: str) -> tuple[str, str]:
    """(the handler's module path, its function name): 'pkg/handler.run' -> ('pkg/handler', 'run')."""
    return bundles.handler_module(handler), handler.rsplit(".", 1)[-1]


def _wrapper(name: str, **values: str) -> str:
    text = (WRAPPERS / name).read_text()
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    return text


def prepare_go(build: BuildInputs) -> BuildCommand:
    """``go build`` of the function's ``package main`` plus Nova's main (nova_main.go), static
    (CGO_ENABLED=0) so the binary runs in any sandbox whatever libc it has."""
    _, function = _parts(build.handler)
    (build.source / "nova_main.go").write_text(_wrapper("nova_main.go", NOVA_HANDLER=function))
    if not (build.source / "go.mod").is_file():
        (build.source / "go.mod").write_text("module function\n\ngo 1.19\n")
    argv = [build.compiler, "build", "-trimpath", "-o", str(build.output / BOOTSTRAP), "."]
    env = {
        "CGO_ENABLED": "0",
        "GOCACHE": str(build.cache / "go-build"),
        "GOPATH": str(build.cache / "go-path"),
        "GOFLAGS": "-mod=mod",
    }
    return BuildCommand(argv, env)


def prepare_rust(build: BuildInputs) -> BuildCommand:
    """``rustc`` on Nova's main (nova_main.rs), which includes the handler's file as a module:
    one file and the standard library, so no cargo and no crates.io."""
    module, function = _parts(build.handler)
    main = _wrapper("nova_main.rs", NOVA_PATH=f"{module}.rs", NOVA_FUNCTION=function)
    (build.source / "nova_main.rs").write_text(main)
    argv = [
        build.compiler,
        "--edition",
        "2021",
        "-C",
        "opt-level=2",
        "-o",
        str(build.output / BOOTSTRAP),
        "nova_main.rs",
    ]
    return BuildCommand(argv, {})


def prepare_java(build: BuildInputs) -> BuildCommand:
    """``javac`` of every .java file of the function with Nova's main (NovaMain.java) into
    ``classes/``; the bootstrap is a script starting that JDK's ``java`` on them."""
    module, function = _parts(build.handler)
    main = _wrapper("NovaMain.java", NOVA_CLASS=module.replace("/", "."), NOVA_METHOD=function)
    (build.source / "NovaMain.java").write_text(main)
    sources = sorted(str(path.relative_to(build.source)) for path in build.source.rglob("*.java"))
    java = os.path.join(os.path.dirname(os.path.realpath(build.compiler)), "java")
    bootstrap = build.output / BOOTSTRAP
    # Serial GC and the C1 compiler only: a function instance is small and short-lived, and
    # these halve the JVM's start-up time.
    bootstrap.write_text(
        "#!/bin/sh\n"
        f'exec {java} -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -cp "$(dirname "$0")/classes" '
        "NovaMain\n"
    )
    bootstrap.chmod(0o755)
    argv = [build.compiler, "-encoding", "UTF-8", "-d", str(build.output / "classes"), *sources]
    return BuildCommand(argv, {})


def prepare_zig(build: BuildInputs) -> BuildCommand:
    """``zig build-exe`` of Nova's main (nova_main.zig, which imports the handler's file, and
    the Runtime API client nova_main.c) against musl, which Zig ships: a static binary that
    runs in any sandbox whatever libc it has. Zig runs a function's comptime code in its own
    interpreter, which reaches no file outside the build and no network."""
    module, function = _parts(build.handler)
    main = _wrapper("nova_main.zig", NOVA_PATH=f"{module}.zig", NOVA_FUNCTION=function)
    (build.source / "nova_main.zig").write_text(main)
    (build.source / "nova_main.c").write_text(_wrapper("nova_main.c"))
    argv = [
        build.compiler,
        "build-exe",
        "nova_main.zig",
        "nova_main.c",
        "-lc",
        "-target",
        "native-linux-musl",
        "-O",
        "ReleaseSafe",
        f"-femit-bin={build.output / BOOTSTRAP}",
        "--global-cache-dir",
        str(build.cache / "zig"),
    ]
    return BuildCommand(argv, {})


WASM_RUNNER = "nova_wasm.py"


def prepare_wasm(build: BuildInputs) -> BuildCommand:
    """Compiles the handler's module (``<module>.wasm``, else ``<module>.wat``) ahead of time
    with wasmtime into ``function.cwasm`` (nova.runtimes.wasm_compile, in a Python that does
    not import from the build's directory); the bootstrap is Nova's WASI host (nova_wasm.py)
    with its own copy of the wasmtime package, as the sandbox sees nothing of Nova's."""
    module, export = _parts(build.handler)
    binary, text = build.source / f"{module}.wasm", build.source / f"{module}.wat"
    found = binary if binary.is_file() else text
    if not found.is_file():
        raise FileNotFoundError(f"the handler names {binary.name} or {text.name}: neither is there")
    (build.output / WASM_RUNNER).write_text(_wrapper(WASM_RUNNER))
    spec = importlib.util.find_spec("wasmtime")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the wasmtime package is not installed beside Nova")
    link_tree(Path(spec.origin).parent, build.output / "wasmtime")
    bootstrap = build.output / BOOTSTRAP
    # The distribution's Python under /usr, which every sandbox sees; -I -S: nothing but the
    # standard library and the build's own files.
    names = f"{shlex.quote(export)} {shlex.quote(str(found.relative_to(build.source)))}"
    bootstrap.write_text(
        f'#!/bin/sh\nexec /usr/bin/python3 -I -S "$(dirname "$0")/{WASM_RUNNER}" {names}\n'
    )
    bootstrap.chmod(0o755)
    target = build.output / "function.cwasm"
    argv = [
        build.compiler,
        "-I",
        "-m",
        "nova.runtimes.wasm_compile",
        str(found),
        export,
        str(target),
    ]
    return BuildCommand(argv, {})


TOOLCHAINS: dict[str, Callable[[BuildInputs], BuildCommand]] = {
    "go": prepare_go,
    "rust": prepare_rust,
    "java": prepare_java,
    "zig": prepare_zig,
    "wasm": prepare_wasm,
}
