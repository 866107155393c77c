"""How to start a worker for a runtime: the interpreter, its bootstrap script and their flags.

The bootstraps ship next to this module (bootstraps/) and run under the *function's* interpreter,
so they are plain scripts that import nothing from nova.
"""

from __future__ import annotations

import os

from nova.agent.spec import InitSpec

BOOTSTRAP_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bootstraps")
BOOTSTRAPS = {
    "python": os.path.join(BOOTSTRAP_DIR, "python_bootstrap.py"),
    "node": os.path.join(BOOTSTRAP_DIR, "node_bootstrap.js"),
    # Lambda Runtime API clients, started by agent/provided.py under the runtime's interpreter.
    "ruby": os.path.join(BOOTSTRAP_DIR, "ruby_bootstrap.rb"),
    "php": os.path.join(BOOTSTRAP_DIR, "php_bootstrap.php"),
    "lua": os.path.join(BOOTSTRAP_DIR, "lua_bootstrap.lua"),
    # One client for both: fetch and dynamic import are all it needs, and both have them.
    "deno": os.path.join(BOOTSTRAP_DIR, "fetch_bootstrap.mjs"),
    "bun": os.path.join(BOOTSTRAP_DIR, "fetch_bootstrap.mjs"),
}
# Flags between the interpreter and a Runtime API client. Deno: the sandbox is the isolation,
# so Deno's own permission prompts would only stop the function.
_CLIENT_FLAGS = {"deno": ("run", "--allow-all", "--no-prompt", "--quiet")}
READY_LINE = b'{"ready":true}'  # a persistent worker's first line: handler import attempted


def runtime_api_client_argv(spec: InitSpec) -> list[str]:
    """The command line of the Runtime API client Nova ships for ``spec.runtime``."""
    return client_argv(spec.runtime, spec.interpreter)


def client_argv(runtime: str, interpreter: str) -> list[str]:
    return [interpreter, *_CLIENT_FLAGS.get(runtime, ()), BOOTSTRAPS[runtime]]


def bootstrap_argv(spec: InitSpec) -> list[str]:
    """The command line of a worker, without the per-process ``--resp-fd`` / ``--once`` flags."""
    return [
        *runtime_argv(spec.runtime, spec.interpreter, spec.memory_mb),
        "--handler",
        spec.handler,
    ]


def runtime_argv(runtime: str, interpreter: str, memory_mb: int) -> list[str]:
    """The interpreter, its flags and the bootstrap: what a worker of any function of this
    runtime and memory size starts with (a pre-started worker starts with just this)."""
    argv = [interpreter]
    if runtime == "python":
        # No site: the host's (or a venv's) site-packages must not be importable by functions.
        argv.append("-S")
    if runtime == "node":
        # Let V8 collect garbage before the sandbox's memory limit kills the process.
        argv.append(f"--max-old-space-size={max(16, memory_mb * 7 // 8)}")
    return [*argv, BOOTSTRAPS[runtime]]
