"""The one NovaError tree.

Every error a client can see has a stable dotted ``code`` and an HTTP ``status``; the API layer
renders them as ``{"error": {"code", "message"}}`` in exactly one handler and the CLI maps them to
exit codes in exactly one place. Failures of *user code* are never exceptions: they are
:class:`nova.core.models.InvocationError` values inside a result.
"""

from __future__ import annotations


class NovaError(Exception):
    """Root of every error Nova raises on purpose."""

    code: str = "Nova.Error"
    status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RequestInvalid(NovaError):
    """A field is present but wrong; the message names the field."""

    code = "Request.Invalid"
    status = 422


class CodeSyntaxError(RequestInvalid):
    """The deployed code does not parse; the message names the file and the line."""

    code = "Code.SyntaxError"


class MalformedJson(NovaError):
    code = "Request.MalformedJson"
    status = 400


class PayloadTooLarge(NovaError):
    code = "Request.PayloadTooLarge"
    status = 413


class FunctionNotFound(NovaError):
    code = "Function.NotFound"
    status = 404

    def __init__(self, name: str) -> None:
        super().__init__(f"function {name!r} does not exist; list functions with `nova fn list`")
        self.name = name


class FunctionAlreadyExists(NovaError):
    code = "Function.AlreadyExists"
    status = 409

    def __init__(self, name: str) -> None:
        super().__init__(
            f"function {name!r} already exists; update it with PATCH /functions/{name} "
            f"(`nova fn update {name}`) or delete it first"
        )
        self.name = name


class VersionNotFound(NovaError):
    code = "Version.NotFound"
    status = 404

    def __init__(self, name: str, number: int) -> None:
        super().__init__(
            f"function {name!r} has no version {number}; list them with `nova version list {name}`"
        )
        self.name = name
        self.number = number


class VersionInUse(NovaError):
    code = "Version.InUse"
    status = 409

    def __init__(self, name: str, number: int, aliases: list[str]) -> None:
        routed = ", ".join(repr(alias) for alias in aliases)
        super().__init__(
            f"version {number} of {name!r} is routed to by alias {routed}; point the alias "
            f"elsewhere (`nova alias set {name} ALIAS --version N`) or delete it first"
        )
        self.aliases = aliases


class AliasNotFound(NovaError):
    code = "Alias.NotFound"
    status = 404

    def __init__(self, name: str, alias: str) -> None:
        super().__init__(
            f"function {name!r} has no alias {alias!r}; list them with `nova alias list {name}`"
        )


class SnapshotNotFound(NovaError):
    code = "Snapshot.NotFound"
    status = 404

    def __init__(self, snapshot_id: str) -> None:
        super().__init__(
            f"no snapshot {snapshot_id!r}; list them with `nova snapshot list` (GET /snapshots)"
        )


class SnapshotUnavailable(NovaError):
    """The function cannot have a snapshot here (its backend, runtime, env or the config)."""

    code = "Snapshot.Unavailable"
    status = 409


class AliasConflict(NovaError):
    """The alias changed since it was read (another writer, or a canary step, came first)."""

    code = "Alias.Conflict"
    status = 409


class RuntimeUnavailable(NovaError):
    code = "Runtime.Unavailable"
    status = 422


class BuildFailed(NovaError):
    """Installing a function's dependencies (requirements.txt, package.json) failed; nothing
    was stored, so what ran before keeps running. The message ends with the installer's log."""

    code = "Build.Failed"
    status = 422


class CompileFailed(NovaError):
    """An invocation of a function whose code did not compile (compile_status ``failed``) and
    that has no earlier build to serve. The message ends with the compiler's output."""

    code = "Function.CompileFailed"
    status = 409


class StillCompiling(NovaError):
    """An invocation waited for the function's build as long as allowed, and it is still
    running (``compile.wait_s``); retry shortly."""

    code = "Function.Compiling"
    status = 503


class RuntimeExists(NovaError):
    """POST /runtimes with the name of a runtime that exists (built in or registered)."""

    code = "Runtime.AlreadyExists"
    status = 409


class TooManyRequests(NovaError):
    """The function is at max_replicas and its wait queue timed out or is full."""

    code = "Function.TooManyRequests"
    status = 429

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ShuttingDown(NovaError):
    code = "Daemon.ShuttingDown"
    status = 503

    def __init__(self) -> None:
        super().__init__("the daemon is shutting down; retry against another node or later")


class SandboxError(NovaError):
    """A sandbox could not be started or its agent misbehaved (infrastructure, not user code)."""

    code = "Sandbox.Failed"
    status = 502


class AgentProtocolError(SandboxError):
    code = "Sandbox.ProtocolError"


class CodeStorageFailed(NovaError):
    """The daemon could not write a function's code to its own disk (full, read-only, I/O)."""

    code = "Code.StorageFailed"
    status = 500


class StoreUnavailable(NovaError):
    code = "Store.Unavailable"
    status = 503


class ConfigInvalid(NovaError):
    """The daemon's settings (flags, NOVA_* variables, the config file) are invalid; raised by
    ``nova daemon`` before it serves anything, never over HTTP."""

    code = "Config.Invalid"
    status = 422


class DaemonStartFailed(NovaError):
    """``nova daemon`` could not start serving (port in use, store unreachable, ...); the
    daemon's log says why. Never over HTTP."""

    code = "Daemon.StartFailed"
    status = 503


class InvocationNotFound(NovaError):
    """No asynchronous invocation has this request id (or it aged out of the store)."""

    code = "Invocation.NotFound"
    status = 404

    def __init__(self, request_id: str) -> None:
        super().__init__(
            f"no asynchronous invocation {request_id!r}; ids come from the 202 answer of an "
            "invoke with X-Nova-Invocation-Type: Event, and finished ones are kept for "
            "events.retention_days"
        )
        self.request_id = request_id


class InvocationAlreadyExists(NovaError):
    """An asynchronous event with this request id is already stored."""

    code = "Invocation.AlreadyExists"
    status = 409

    def __init__(self, request_id: str) -> None:
        super().__init__(
            f"an asynchronous invocation with request id {request_id!r} already exists; send a "
            "new X-Nova-Request-Id (or none), or an Idempotency-Key to make repeats run once"
        )
