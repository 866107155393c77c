"""The error type strings the agent puts on the wire, and the one exception it raises inside.

A failure of user code is data in an Exec reply (``ok: true, error: {type, message, stack}``); a
request the agent cannot serve is ``ok: false`` with the same error shape. The host matches on
these type strings, so they live in exactly one place. The bootstraps (which cannot import nova)
spell the first three again; keep them in step.
"""

from __future__ import annotations

from enum import StrEnum

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:  # typing is only needed by the type checker; importing it costs start-up time
    from typing import Any


class ErrorType(StrEnum):
    # Failures of one invocation (Exec replies with ok=true).
    IMPORT_MODULE = "Runtime.ImportModuleError"  # the handler's module failed to import
    HANDLER_NOT_FOUND = "Runtime.HandlerNotFound"  # the module has no such callable
    SERIALIZATION = "Runtime.SerializationError"  # the return value is not JSON
    EXIT = "Runtime.ExitError"  # the worker process died during the invocation
    TIMEOUT = "Function.Timeout"  # the deadline passed; the worker was killed (same as host)
    RESPONSE_TOO_LARGE = "Runtime.ResponseTooLarge"  # the reply would exceed the frame limit
    INVALID_RESPONSE = "Runtime.InvalidResponse"  # the worker broke the line protocol
    STOPPED = "Runtime.Stopped"  # Stop (or a Drain past the timeout) ended the invocation
    # Requests the agent refuses (ok=false).
    INVALID_MESSAGE = "Runtime.InvalidMessage"
    UNKNOWN_MESSAGE = "Runtime.UnknownMessage"
    MESSAGE_TOO_LARGE = "Runtime.MessageTooLarge"
    NOT_INITIALIZED = "Runtime.NotInitialized"
    ALREADY_INITIALIZED = "Runtime.AlreadyInitialized"
    INVALID_INIT = "Runtime.InvalidInit"
    INIT_FAILED = "Runtime.InitError"  # the workers did not start
    DRAINED = "Runtime.Drained"  # Exec between Drain and Reload: no worker runs


def error_object(kind: str, message: str, stack: list[str] | None = None) -> dict[str, Any]:
    return {"type": str(kind), "message": message, "stack": stack or []}


class AgentError(Exception):
    """A request the agent refuses or cannot complete; becomes a ``ok: false`` reply."""

    def __init__(self, kind: ErrorType, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message

    def to_wire(self) -> dict[str, Any]:
        return error_object(self.kind, self.message)
