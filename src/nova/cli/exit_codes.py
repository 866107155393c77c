"""Named exit codes, and the one function that maps a failure to one of them.

Scripts can rely on these numbers; they never change meaning. Nothing else in the CLI picks a
numeric exit status: commands raise (see :mod:`nova.cli.errors`) and the error boundary in
:mod:`nova.cli.main` asks :func:`exit_code_for`.
"""

from __future__ import annotations

from enum import IntEnum

from nova.cli.errors import ApiError, BadResponse, FunctionFailed, Unreachable, UsageProblem
from nova.core.errors import NovaError


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1  # anything not named below
    USAGE = 2  # bad command line or local input (same code the argument parser uses)
    NOT_FOUND = 3  # HTTP 404 / *.NotFound
    CONFLICT = 4  # HTTP 409 / *.AlreadyExists
    INVALID = 5  # HTTP 400, 413, 422 / Request.*: the daemon refused the request's content
    UNREACHABLE = 6  # no connection to the daemon
    THROTTLED = 7  # HTTP 429: at max_replicas and the queue is full; retry later
    FUNCTION_ERROR = 8  # the function ran and raised (invoke)
    SERVER_ERROR = 9  # HTTP 5xx: the daemon or a sandbox failed
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it)


_BY_STATUS: dict[int, ExitCode] = {
    400: ExitCode.INVALID,
    404: ExitCode.NOT_FOUND,
    409: ExitCode.CONFLICT,
    413: ExitCode.INVALID,
    422: ExitCode.INVALID,
    429: ExitCode.THROTTLED,
}


def exit_code_for_api(code: str | None, status: int) -> ExitCode:
    """Map an API error (stable dotted ``code`` first, HTTP ``status`` as fallback)."""
    if code:
        if code.endswith(".NotFound"):
            return ExitCode.NOT_FOUND
        if code.endswith((".AlreadyExists", ".Conflict")):
            return ExitCode.CONFLICT
        if code.endswith(".TooManyRequests"):
            return ExitCode.THROTTLED
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return ExitCode.SERVER_ERROR
    return ExitCode.ERROR


def exit_code_for(exc: BaseException) -> ExitCode:
    """The exit code for any failure that reaches the error boundary."""
    if isinstance(exc, ApiError):
        return exit_code_for_api(exc.code, exc.status)
    if isinstance(exc, NovaError):  # raised in-process, e.g. by `nova daemon`
        return exit_code_for_api(exc.code, exc.status)
    if isinstance(exc, Unreachable):
        return ExitCode.UNREACHABLE
    if isinstance(exc, UsageProblem):
        return ExitCode.USAGE
    if isinstance(exc, FunctionFailed):
        return ExitCode.FUNCTION_ERROR
    if isinstance(exc, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    if isinstance(exc, BadResponse):
        return ExitCode.SERVER_ERROR
    return ExitCode.ERROR  # TimedOut, Aborted, and anything unexpected
