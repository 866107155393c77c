"""What a command raises when it cannot do its job.

Each error knows what to tell the person (``message``, an optional ``hint`` and an optional
multi-line ``detail``) but not its exit code: :mod:`nova.cli.exit_codes` decides that in one
place. Foreign errors (httpx, OS, JSON) are translated into these at the boundary where they
occur, with ``raise ... from exc`` so ``--debug`` still shows the cause.
"""

from __future__ import annotations

DAEMON_HINT = "is the daemon running? start it with `nova daemon` or `make run`"


class CliError(Exception):
    """Root of the errors the CLI reports as ``error: <message>``."""

    def __init__(self, message: str, *, hint: str | None = None, detail: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.detail = detail


class UsageProblem(CliError):
    """The command line or a local file given on it is wrong; nothing was sent."""


class Unreachable(CliError):
    """No connection to the daemon could be made."""

    def __init__(self, endpoint: str, reason: str) -> None:
        super().__init__(f"cannot reach the Nova daemon at {endpoint}: {reason}", hint=DAEMON_HINT)
        self.endpoint = endpoint


class TimedOut(CliError):
    """Connected, but no answer came back in time."""


class BadResponse(CliError):
    """The daemon answered with something that is not the documented API shape."""


class ApiError(CliError):
    """A non-2xx answer: ``{"error": {"code", "message"}}`` with its HTTP status."""

    def __init__(
        self,
        code: str | None,
        message: str,
        status: int,
        *,
        retry_after: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.code = code
        self.status = status
        self.retry_after = retry_after


class FunctionFailed(CliError):
    """The function ran and raised; ``detail`` holds its (user-only) stack."""


class Aborted(CliError):
    """The person declined a confirmation prompt."""


class DaemonFailed(CliError):
    """``nova daemon`` could not be loaded or started."""
