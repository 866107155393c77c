"""The rules a function's config must meet: one check, run on create and on every update.

A config that passes can be started: every bound here is one the sandboxes and the agent honour
(the agent refuses an Init outside them, which would fail every invocation). Checking the whole
merged config, not just the fields a request changed, is what keeps a PATCH from producing a
combination create would refuse.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from nova.agent.spec import HANDLER_PATTERN, RUNTIME_API_RUNTIMES
from nova.code import bundle as bundles
from nova.core.errors import RequestInvalid
from nova.core.models import CodeBundle, ExecutionMode, FunctionConfig
from nova.core.secrets import secret_refs, validate_secret_name
from nova.core.tenancy import validate_full_name
from nova.events.destinations import Destination
from nova.events.policy import check_async_config
from nova.runtimes.registry import RuntimeRegistry
from nova.sandbox.registry import BackendRegistry

# Python and Node agents start and answer in 64 MB on the container and gVisor backends.
MIN_MEMORY_MB = 64
# Below ~0.1 s a fresh worker (process mode, a cold start) cannot even start within the budget.
MIN_TIMEOUT_S = 0.1
# Each concurrent invocation has its own worker process; measured idle: Python ~4 MB, Node ~6 MB
# on top of the agent. 16 MB each leaves the handler room, so an instance never dies starting.
MEMORY_PER_WORKER_MB = 16
# The variables reach workers through execve, whose strings are limited (128 KiB each, and all
# of them together with the arguments to a quarter of the stack limit).
MAX_ENV_BYTES = 64 * 1024
MAX_HANDLER_LENGTH = 256
MAX_DESCRIPTION_LENGTH = 1024
# Where a refused upper bound can be raised.
_SETTING = {
    "memory_mb": " (the daemon's functions.max_memory_mb)",
    "timeout_s": " (the daemon's functions.max_timeout_s)",
    "max_replicas": " (the daemon's functions.max_replicas)",
    "instance_concurrency": " (the daemon's functions.max_instance_concurrency)",
}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_RESERVED_ENV_PREFIXES = ("NOVA_", "AWS_LAMBDA_")
# The files a handler's module may be, per runtime. Python imports the module by its dotted
# name ("pkg.app" and "pkg/app" are pkg/app.py); Node requires it as a path ("pkg.app" is
# pkg.app.js).
HANDLER_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "python": (".py", "/__init__.py"),
    "node": (".js", ".cjs", ".mjs"),
    "ruby": (".rb",),
    "php": (".php",),
    "lua": (".lua",),
    "deno": (".ts", ".js", ".mjs"),
    "bun": (".ts", ".js", ".mjs"),
    "go": (".go",),
    "rust": (".rs",),
    "java": (".java",),
    "zig": (".zig",),
    "wasm": (".wasm", ".wat"),
}
DOTTED_MODULES = frozenset({"python"})
# Runtimes that start one fixed file instead of the handler's module: the package must hold it,
# and a single `code` source is stored as it. The handler is then only passed on (`_HANDLER`).
ENTRYPOINT_FILES: dict[str, tuple[str, ...]] = {"provided": ("bootstrap",)}


@dataclass(frozen=True, slots=True)
class FunctionLimits:
    """The upper bounds the operator sets (``functions.*`` settings)."""

    max_memory_mb: int
    max_timeout_s: float
    max_replicas: int
    # Every worker of an instance starts at its cold start, within pool.start_timeout_s: here
    # 8 Node workers take ~1.7 s on gVisor, 16 ~4.8 s, 64 more than the default 10 s.
    max_instance_concurrency: int


def check_config(
    config: FunctionConfig,
    runtimes: RuntimeRegistry,
    backends: BackendRegistry,
    limits: FunctionLimits,
) -> FunctionConfig:
    """``config`` with its mode normalised, or RequestInvalid (422) naming the first bad field."""
    validate_full_name(config.name)
    spec, _ = runtimes.require_available(config.runtime)
    _check_handler(config.handler)
    _check_range("memory_mb", config.memory_mb, MIN_MEMORY_MB, limits.max_memory_mb, "MB")
    _check_range("timeout_s", config.timeout_s, MIN_TIMEOUT_S, limits.max_timeout_s, "s")
    _check_env(config.env)
    _check_scaling(config, limits)
    _check_backend(config, backends)
    if len(config.description) > MAX_DESCRIPTION_LENGTH or "\x00" in config.description:
        raise RequestInvalid(
            f"description: at most {MAX_DESCRIPTION_LENGTH} characters, without NUL"
        )
    check_async_config(config)
    Destination.parse("on_success", config.on_success)
    Destination.parse("on_failure", config.on_failure)
    try:
        mode = ExecutionMode(config.mode)
    except ValueError:
        modes = ", ".join(mode.value for mode in ExecutionMode)
        raise RequestInvalid(f"mode: {config.mode!r} is not one of {modes}") from None
    if config.runtime in RUNTIME_API_RUNTIMES or spec.agent_runtime is not None:
        _check_custom_runtime(config, mode)
    return dataclasses.replace(config, mode=mode)


def _check_custom_runtime(config: FunctionConfig, mode: ExecutionMode) -> None:
    """A Runtime API client (a `provided` bootstrap, Ruby, PHP) serves one invocation at a
    time and lives across them, as on Lambda."""
    if mode is not ExecutionMode.PERSISTENT:
        raise RequestInvalid(
            f"mode: a {config.runtime} function's bootstrap is long-lived; use mode persistent"
        )
    if config.instance_concurrency != 1:
        raise RequestInvalid(
            f"instance_concurrency: a {config.runtime} function's bootstrap takes one "
            "invocation at a time; use 1 and let max_replicas scale it"
        )


def handler_files(config: FunctionConfig) -> tuple[str, ...]:
    """The files the handler's module may be, first the one a single `code` source becomes."""
    if config.runtime in ENTRYPOINT_FILES:
        return ENTRYPOINT_FILES[config.runtime]
    module = bundles.handler_module(config.handler)
    if config.runtime in DOTTED_MODULES:
        module = module.replace(".", "/")
    return tuple(module + ending for ending in HANDLER_EXTENSIONS.get(config.runtime, ()))


def check_handler_file(config: FunctionConfig, code: CodeBundle) -> None:
    """Refuse code without the handler's module, naming what was looked for."""
    wanted = handler_files(config)
    if wanted and not any(path in code.files for path in wanted):
        present = ", ".join(sorted(code.files)[:10])
        raise RequestInvalid(
            f"handler: {config.handler!r} needs the file {' or '.join(wanted)}, but the code "
            f"has: {present}"
        )


def _check_handler(handler: str) -> None:
    if len(handler) > MAX_HANDLER_LENGTH or not HANDLER_PATTERN.fullmatch(handler):
        raise RequestInvalid(
            f"handler: {handler[:80]!r} must look like 'module.function' (e.g. "
            "'handler.handler' or 'pkg/app.main'): ASCII letters, digits, '_' and '-', "
            f"parts separated by '.' or '/', at most {MAX_HANDLER_LENGTH} characters"
        )
    bundles.handler_module(handler)  # the module's path fits the filesystem's limits


def _check_range(field: str, value: float, low: float, high: float, unit: str) -> None:
    # An int is compared as it is: float() of a huge one would overflow.
    finite = isinstance(value, int) or math.isfinite(value)
    if isinstance(value, bool) or not finite or not low <= value <= high:
        raisable = _SETTING.get(field, "") if finite and value > high else ""
        raise RequestInvalid(f"{field}: {value!r} is outside {low:g}-{high:g} {unit}{raisable}")


def _check_env(env: Mapping[str, str]) -> None:
    size = 0
    for key, value in env.items():
        if not _ENV_NAME.fullmatch(key):
            raise RequestInvalid(
                f"env: {key[:80]!r} is not a valid environment variable name (letters, digits "
                "and '_', not starting with a digit, at most 128 characters)"
            )
        if key.startswith(_RESERVED_ENV_PREFIXES):
            raise RequestInvalid(
                f"env: {key!r} is reserved; the NOVA_ and AWS_LAMBDA_ prefixes are set by Nova"
            )
        if "\x00" in value:
            raise RequestInvalid(f"env: the value of {key!r} contains a NUL character")
        size += len(key) + len(value.encode()) + 2  # "KEY=VALUE\0"
    for key, secret in secret_refs(env).items():
        validate_secret_name(secret, f"env: {key}: $SECRET: reference")
    if size > MAX_ENV_BYTES:
        raise RequestInvalid(
            f"env: the variables take {size} bytes; at most {MAX_ENV_BYTES} are allowed "
            "(pass larger data through the code or the event)"
        )


def _check_scaling(config: FunctionConfig, limits: FunctionLimits) -> None:
    _check_range("max_replicas", config.max_replicas, 1, limits.max_replicas, "instances")
    if not 0 <= config.min_replicas <= config.max_replicas:
        raise RequestInvalid(
            f"min_replicas: {config.min_replicas} must be from 0 to max_replicas="
            f"{config.max_replicas}"
        )
    concurrency = config.instance_concurrency
    _check_range(
        "instance_concurrency", concurrency, 1, limits.max_instance_concurrency, "invocations"
    )
    if concurrency * MEMORY_PER_WORKER_MB > config.memory_mb:
        raise RequestInvalid(
            f"instance_concurrency: {concurrency} workers need memory_mb of at least "
            f"{concurrency * MEMORY_PER_WORKER_MB} ({MEMORY_PER_WORKER_MB} MB each); raise "
            "memory_mb or lower instance_concurrency"
        )


def _check_backend(config: FunctionConfig, backends: BackendRegistry) -> None:
    """Refuse a backend this host cannot run, or network access the backend cannot give."""
    backend = backends.get(config.backend)  # BackendUnavailable (422) with the reason
    if config.network and not backend.info.supports_network:
        raise RequestInvalid(
            f"network: instances on the {backend.info.name} backend cannot have network access "
            "here; GET /runtimes shows which backends can (supports_network) and why"
        )
