"""Which language runtimes exist, where their interpreter is, and whether this host has it.

Detection runs once at daemon start (one ``--version`` call per runtime, in a thread) so the
invoke path only reads a dict.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from nova.core.errors import RequestInvalid, RuntimeExists, RuntimeUnavailable
from nova.runtimes.registered import RuntimeDefinition


@dataclass(frozen=True, slots=True)
class RuntimeSpec:
    name: str
    extension: str  # the file a single `code` source is stored as: handler module + extension
    default_handler: str
    candidates: tuple[str, ...]  # interpreter paths/names tried in order
    version_args: tuple[str, ...] = ("--version",)  # () : nothing to ask (see `provided`)
    interpreted: bool = True  # code can be hot-reloaded without a build step
    aliases: tuple[str, ...] = ()
    unsupported: str | None = None  # why Nova cannot run it yet (listed available: false)
    # A registered runtime (registered.py): the agent runs it as this runtime, with this
    # bootstrap added to packages that ship none and these env defaults.
    agent_runtime: str | None = None
    bootstrap: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    # A compiled language (runtimes/toolchains.py): ``candidates`` are its compiler, and the
    # sandbox needs only this to start the built bootstrap.
    sandbox_interpreter: str | None = None


@dataclass(frozen=True, slots=True)
class RuntimeStatus:
    spec: RuntimeSpec
    available: bool
    interpreter: str | None
    version: str
    reason: str


_NOT_PACKAGED = (
    "no {what} toolchain is packaged by Debian 12, PyPI or npm; build a Lambda Runtime API "
    "client yourself and deploy it as runtime provided"
)


def _python_candidates() -> tuple[str, ...]:
    # The distribution's interpreter keeps Nova's own dependencies out of user functions; fall
    # back to the daemon's interpreter on hosts without one.
    return ("/usr/bin/python3", sys.executable)


def _zig_candidates() -> tuple[str, ...]:
    """The compiler PyPI's ziglang package installs beside Nova, then one on PATH."""
    spec = importlib.util.find_spec("ziglang")
    shipped = (str(Path(spec.origin).parent / "zig"),) if spec and spec.origin else ()
    return (*shipped, "zig")


BUILTIN_RUNTIMES: tuple[RuntimeSpec, ...] = (
    RuntimeSpec("python", ".py", "handler.handler", _python_candidates()),
    RuntimeSpec("node", ".js", "index.handler", ("/usr/bin/node", "node", "nodejs")),
    # A custom runtime: the package's executable `bootstrap` speaks the Lambda Runtime API that
    # the agent serves (agent/provided.py). Its "interpreter" is the shell such bootstraps most
    # often need; a container instance must see it (the host's /usr, or an image with it).
    RuntimeSpec(
        "provided",
        "",
        "function.handler",
        ("/bin/sh", "/usr/bin/sh"),
        version_args=(),
        aliases=("custom", "provided.al2", "provided.al2023"),
    ),
    # Languages served through the Lambda Runtime API by a client Nova ships (the agent's
    # bootstraps/): adding one needs no worker protocol in the language, only HTTP and JSON.
    RuntimeSpec("ruby", ".rb", "handler.handler", ("/usr/bin/ruby", "ruby")),
    RuntimeSpec("php", ".php", "handler.handler", ("/usr/bin/php", "php")),
    # Lua's Runtime API client needs Debian's lua-socket and lua-cjson: asked for with the
    # version, so a host without them lists lua unavailable, saying which is missing.
    RuntimeSpec(
        "lua",
        ".lua",
        "handler.handler",
        ("/usr/bin/lua5.4", "lua5.4"),
        ("-e", "require 'socket.http'; require 'cjson'; print(_VERSION)"),
    ),
    # From the npm registry (`make runtimes`: npm install -g deno bun), which installs them
    # under npm's prefix (/usr with Debian's npm), inside what a container instance binds.
    RuntimeSpec("deno", ".ts", "handler.handler", ("/usr/bin/deno", "/usr/local/bin/deno", "deno")),
    RuntimeSpec("bun", ".ts", "handler.handler", ("/usr/bin/bun", "/usr/local/bin/bun", "bun")),
    # Compiled languages: built after create/update (runtimes/compiler.py) into a bootstrap
    # that Nova's main for the language (runtimes/wrappers/) links to the handler.
    RuntimeSpec(
        "go",
        ".go",
        "handler.Handler",
        ("/usr/lib/go/bin/go", "/usr/bin/go", "go"),
        version_args=("version",),
        interpreted=False,
        agent_runtime="provided",
        sandbox_interpreter="/bin/sh",
        aliases=("golang",),
    ),
    RuntimeSpec(
        "rust",
        ".rs",
        "handler.handler",
        ("/usr/bin/rustc", "rustc"),
        interpreted=False,
        agent_runtime="provided",
        sandbox_interpreter="/bin/sh",
    ),
    RuntimeSpec(
        "java",
        ".java",
        "Handler.handleRequest",
        ("/usr/bin/javac", "javac"),
        version_args=("-version",),
        interpreted=False,
        agent_runtime="provided",
        sandbox_interpreter="/bin/sh",
    ),
    RuntimeSpec(
        "zig",
        ".zig",
        "handler.handler",
        _zig_candidates(),
        version_args=("version",),
        interpreted=False,
        agent_runtime="provided",
        sandbox_interpreter="/bin/sh",
    ),
    # WebAssembly (WASI commands): "compiled" ahead of time by wasmtime in the daemon's own
    # Python, which must import it; the handler names the module file and its export.
    RuntimeSpec(
        "wasm",
        ".wat",
        "handler._start",
        (sys.executable,),
        version_args=(
            "-I",
            "-c",
            "import importlib.metadata as m, wasmtime; print('wasmtime', m.version('wasmtime'))",
        ),
        interpreted=False,
        agent_runtime="provided",
        sandbox_interpreter="/bin/sh",
        aliases=("wasi", "webassembly"),
    ),
    *(
        RuntimeSpec(name, "", "handler.handler", (), unsupported=reason)
        for name, reason in (
            (
                "dotnet",
                _NOT_PACKAGED.format(
                    what=".NET (Microsoft's own apt repository has one; Debian 12's Mono 6.8 "
                    "compiles C# for the older .NET Framework, not .NET)"
                ),
            ),
            (
                "swift",
                _NOT_PACKAGED.format(
                    what="Swift (Debian 12's `swift` package is OpenStack's object store; "
                    "swiftlang comes with later Debian releases)"
                ),
            ),
        )
    ),
)


def _resolve(candidate: str) -> str | None:
    if "/" in candidate:
        path = Path(candidate)
        return str(path) if path.is_file() else None
    return shutil.which(candidate)


def detect(spec: RuntimeSpec) -> RuntimeStatus:
    if spec.unsupported is not None:
        return RuntimeStatus(spec, False, None, "", spec.unsupported)
    tried = []
    for candidate in spec.candidates:
        interpreter = _resolve(candidate)
        tried.append(candidate)
        if interpreter is None:
            continue
        if not spec.version_args:
            return RuntimeStatus(spec, True, interpreter, "bootstrap (Lambda Runtime API)", "ok")
        try:
            completed = subprocess.run(
                [interpreter, *spec.version_args],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return RuntimeStatus(spec, False, interpreter, "", f"{interpreter} does not run: {exc}")
        lines = (completed.stdout or completed.stderr).strip().splitlines()
        if completed.returncode != 0:
            said = f": {lines[0]}" if lines else ""
            return RuntimeStatus(
                spec,
                False,
                interpreter,
                "",
                f"{interpreter} {' '.join(spec.version_args)} failed{said}; make runtimes "
                "installs what is missing",
            )
        return RuntimeStatus(spec, True, interpreter, lines[0] if lines else "", "ok")
    return RuntimeStatus(
        spec,
        False,
        None,
        "",
        f"no interpreter found (tried {', '.join(tried)}); install it and restart the daemon",
    )


class RuntimeRegistry:
    def __init__(self, statuses: Iterable[RuntimeStatus]) -> None:
        self._statuses = {status.spec.name: status for status in statuses}
        self._aliases = {
            alias: status.spec.name
            for status in self._statuses.values()
            for alias in status.spec.aliases
        }

    @classmethod
    def detect_builtin(cls) -> RuntimeRegistry:
        return cls(detect(spec) for spec in BUILTIN_RUNTIMES)

    def all(self) -> list[RuntimeStatus]:
        return list(self._statuses.values())

    def register(self, definition: RuntimeDefinition) -> RuntimeStatus:
        """Add a registered runtime; Conflict if the name (or an alias) is taken."""
        name = definition.name
        if name in self._statuses or name in self._aliases:
            raise RuntimeExists(f"runtime {name!r} exists already; pick another name")
        spec = RuntimeSpec(
            name,
            definition.extension,
            definition.default_handler,
            ("/bin/sh", "/usr/bin/sh"),
            version_args=(),
            agent_runtime="provided",
            bootstrap=definition.bootstrap,
            env=tuple(sorted(definition.env.items())),
        )
        status = detect(spec)
        self._statuses[name] = RuntimeStatus(
            spec, status.available, status.interpreter, "registered", status.reason
        )
        return self._statuses[name]

    def canonical(self, name: str) -> str:
        """The runtime's own name for ``name`` (an alias such as ``custom`` -> ``provided``)."""
        return self._aliases.get(name, name)

    def get(self, name: str) -> RuntimeStatus:
        """The status of a known runtime; RequestInvalid names the known ones otherwise."""
        try:
            return self._statuses[self._aliases.get(name, name)]
        except KeyError:
            known = ", ".join(sorted(self._statuses))
            raise RequestInvalid(
                f"runtime: unknown runtime {name!r}; known runtimes: {known}"
            ) from None

    def require_available(self, name: str) -> tuple[RuntimeSpec, str]:
        """The runtime's spec and interpreter path, or RuntimeUnavailable with the reason."""
        status = self.get(name)
        if not status.available or status.interpreter is None:
            raise RuntimeUnavailable(
                f"runtime {name!r} is unavailable on this host: {status.reason}"
            )
        return status.spec, status.interpreter
