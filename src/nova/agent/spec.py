"""The Init message, validated once into a frozen InitSpec that every other agent module reads.

Everything the host may get wrong is checked here, at the edge, with a message naming the field;
past this point the agent trusts the spec.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping

from nova.agent.errors import AgentError, ErrorType
from nova.agent.protocol import PROTOCOL_VERSION

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:  # typing is only needed by the type checker; importing it costs start-up time
    from typing import Any, NoReturn

# runtime -> interpreter looked up on PATH. A `provided` function runs its own `bootstrap`; its
# "interpreter" is the shell such bootstraps most often need, which the sandbox must hold.
RUNTIMES = {
    "python": "python3",
    "node": "node",
    "provided": "sh",
    "ruby": "ruby",
    "php": "php",
    "deno": "deno",
    "bun": "bun",
    "lua": "lua5.4",
}
# Runtimes whose worker speaks the Lambda Runtime API (agent/provided.py) rather than Nova's
# worker lines: a `provided` function's own bootstrap, or one Nova ships for the language.
RUNTIME_API_RUNTIMES = frozenset({"provided", "ruby", "php", "deno", "bun", "lua"})
MODES = ("persistent", "process")
MAX_CONCURRENCY = 256
DEFAULT_INIT_TIMEOUT_S = 10.0
# "module.function"; the module may be a relative path ("pkg/mod.fn") or dotted ("pkg.mod.fn").
# The daemon validates handlers with this same pattern, so it never stores one Init refuses.
HANDLER_PATTERN = re.compile(r"[A-Za-z0-9_\-]+(?:[./][A-Za-z0-9_\-]+)*\.[A-Za-z_$][A-Za-z0-9_$]*")


class InitSpec:
    """The validated Init message. A plain slotted class rather than a dataclass: importing
    dataclasses pulls in inspect, ~5 ms of every cold start. Treat instances as immutable."""

    __slots__ = (
        "code_dir",
        "concurrency",
        "env",
        "function_name",
        "function_version",
        "handler",
        "init_timeout_s",
        "interpreter",
        "memory_mb",
        "mode",
        "runtime",
        "timeout_s",
        "tmp_dir",
    )

    def __init__(
        self,
        *,
        runtime: str,
        handler: str,
        mode: str,
        code_dir: str,
        env: Mapping[str, str],
        function_name: str,
        function_version: str,
        memory_mb: int,
        timeout_s: float,
        concurrency: int,
        interpreter: str,
        tmp_dir: str,
        init_timeout_s: float,  # how long workers may take to start (interpreter + handler import)
    ) -> None:
        self.runtime = runtime
        self.handler = handler
        self.mode = mode
        self.code_dir = code_dir
        self.env = env
        self.function_name = function_name
        self.function_version = function_version
        self.memory_mb = memory_mb
        self.timeout_s = timeout_s
        self.concurrency = concurrency
        self.interpreter = interpreter
        self.tmp_dir = tmp_dir
        self.init_timeout_s = init_timeout_s

    def __repr__(self) -> str:
        # env holds the function's secrets once resolved: its names only, never its values.
        fields = ", ".join(
            f"env=<{', '.join(self.env)}>" if name == "env" else f"{name}={getattr(self, name)!r}"
            for name in self.__slots__
        )
        return f"InitSpec({fields})"


def parse_init(message: Mapping[str, Any], agent_env: Mapping[str, str]) -> InitSpec:
    protocol = message.get("protocol", PROTOCOL_VERSION)
    if protocol != PROTOCOL_VERSION:
        _invalid(f"protocol {protocol!r} is not supported; this agent speaks {PROTOCOL_VERSION}")
    runtime = _choice(message, "runtime", tuple(RUNTIMES))
    handler = _string(message, "handler")
    if HANDLER_PATTERN.fullmatch(handler) is None or ".." in handler:
        _invalid(f"handler {handler!r} must look like 'module.function' (e.g. 'handler.handler')")
    env = message.get("env") or {}
    if not isinstance(env, dict) or not all(
        isinstance(key, str) and key and "=" not in key and isinstance(value, str)
        for key, value in env.items()
    ):
        _invalid("env must be an object of string names (without '=') to string values")
    return InitSpec(
        runtime=runtime,
        handler=handler,
        mode=_choice(message, "mode", MODES, default="persistent"),
        code_dir=_directory(message, "code_dir", None),
        env=dict(env),
        function_name=_string(message, "function_name"),
        function_version=_string(message, "function_version", "$LATEST"),
        memory_mb=int(_number(message, "memory_mb", 128, minimum=1)),
        timeout_s=_number(message, "timeout_s", 30.0, minimum=0.001),
        concurrency=_concurrency(message),
        interpreter=_interpreter(message.get("interpreter"), runtime, agent_env),
        tmp_dir=_directory(message, "tmp_dir", "/tmp"),
        init_timeout_s=_number(message, "init_timeout_s", DEFAULT_INIT_TIMEOUT_S, minimum=0.001),
    )


def _invalid(message: str) -> NoReturn:
    raise AgentError(ErrorType.INVALID_INIT, f"Init: {message}")


def _string(message: Mapping[str, Any], field: str, default: str | None = None) -> str:
    value = message.get(field, default)
    if not isinstance(value, str) or not value:
        _invalid(f"{field} must be a non-empty string, not {value!r}")
    return str(value)


def _choice(
    message: Mapping[str, Any], field: str, allowed: tuple[str, ...], default: str | None = None
) -> str:
    value = message.get(field, default)
    if value not in allowed:
        _invalid(f"{field} must be one of {', '.join(allowed)}, not {value!r}")
    return str(value)


def _number(message: Mapping[str, Any], field: str, default: float, *, minimum: float) -> float:
    value = message.get(field, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= minimum:
        _invalid(f"{field} must be a number >= {minimum:g}, not {value!r}")
    return float(value)


def _concurrency(message: Mapping[str, Any]) -> int:
    value = message.get("concurrency", 1)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CONCURRENCY:
        _invalid(f"concurrency must be an integer from 1 to {MAX_CONCURRENCY}, not {value!r}")
    return int(value)


def _directory(message: Mapping[str, Any], field: str, default: str | None) -> str:
    path = _string(message, field, default)
    if not os.path.isabs(path) or not os.path.isdir(path):
        _invalid(f"{field} must be an absolute path of an existing directory, not {path!r}")
    return os.path.normpath(path)


def _interpreter(value: Any, runtime: str, agent_env: Mapping[str, str]) -> str:
    if value is None:
        found = shutil.which(RUNTIMES[runtime], path=agent_env.get("PATH", os.defpath))
        if found is None:
            _invalid(f"no interpreter given and {RUNTIMES[runtime]!r} is not on PATH")
        return str(found)
    if not isinstance(value, str) or not os.path.isabs(value):
        _invalid(f"interpreter must be an absolute path, not {value!r}")
    if not os.access(value, os.X_OK) or os.path.isdir(value):
        _invalid(f"interpreter {value!r} is not an executable file")
    return str(value)
