"""Named exit codes, and the one function that maps a failure to one of them.

Scripts can rely on these numbers; they never change meaning, and README.md lists each with
when it happens. Nothing else in the CLI picks a numeric exit status: commands raise (see
:mod:`nova.cli.errors`) and the error boundary in :mod:`nova.cli.main` asks
:func:`exit_code_for`. The two codes the argument parser owns keep its meaning: 2 for a wrong
command line, 130 for Ctrl-C.
"""

from __future__ import annotations

from enum import IntEnum

from nova.cli.errors import (
    Aborted,
    ApiError,
    BadResponse,
    DaemonFailed,
    FunctionFailed,
    TimedOut,
    Unreachable,
    UsageProblem,
)
from nova.core.errors import NovaError


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1  # only an unexpected failure of the CLI itself (a bug: the message says so)
    USAGE = 2  # bad command line, local input, or `nova daemon` configuration; nothing was sent
    NOT_FOUND = 3  # HTTP 404 / *.NotFound
    CONFLICT = 4  # HTTP 409 / *.AlreadyExists
    INVALID = 5  # any other HTTP 4xx (400, 413, 422, ...): the daemon refused the request
    UNREACHABLE = 6  # no connection to the daemon
    THROTTLED = 7  # HTTP 429: at max_replicas and the queue is full; retry later
    FUNCTION_ERROR = 8  # the function ran and raised (invoke)
    SERVER_ERROR = 9  # HTTP 5xx, or an answer that is not the documented API
    TIMED_OUT = 10  # connected, but no answer within the timeout
    ABORTED = 11  # a confirmation prompt was declined (or its input ended)
    DAEMON_FAILED = 12  # `nova daemon` could not start
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it)
    BROKEN_PIPE = 141  # stdout was closed early, e.g. `| head` (128 + SIGPIPE, as shells report)


_BY_CODE: dict[str, ExitCode] = {
    "Config.Invalid": ExitCode.USAGE,  # raised in-process by `nova daemon`
    "Daemon.StartFailed": ExitCode.DAEMON_FAILED,
}
_BY_STATUS: dict[int, ExitCode] = {
    404: ExitCode.NOT_FOUND,
    409: ExitCode.CONFLICT,
    429: ExitCode.THROTTLED,
}


def exit_code_for_api(code: str | None, status: int) -> ExitCode:
    """Map an API error (stable dotted ``code`` first, HTTP ``status`` as fallback)."""
    if code:
        if code in _BY_CODE:
            return _BY_CODE[code]
        if code.endswith(".NotFound"):
            return ExitCode.NOT_FOUND
        if code.endswith((".AlreadyExists", ".Conflict")):
            return ExitCode.CONFLICT
        if code.endswith(".TooManyRequests"):
            return ExitCode.THROTTLED
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if 400 <= status < 500:
        return ExitCode.INVALID
    return ExitCode.SERVER_ERROR  # 5xx, or a status the API never sends (1xx, 3xx)


def exit_code_for(exc: BaseException) -> ExitCode:
    """The exit code for any failure that reaches the error boundary."""
    if isinstance(exc, ApiError):
        return exit_code_for_api(exc.code, exc.status)
    if isinstance(exc, NovaError):  # raised in-process, e.g. by `nova daemon`
        return exit_code_for_api(exc.code, exc.status)
    for kind, code in _BY_CLI_ERROR:
        if isinstance(exc, kind):
            return code
    if isinstance(exc, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    if isinstance(exc, BrokenPipeError):
        return ExitCode.BROKEN_PIPE
    return ExitCode.ERROR  # anything unexpected: a bug in the CLI


_BY_CLI_ERROR: tuple[tuple[type[Exception], ExitCode], ...] = (
    (Unreachable, ExitCode.UNREACHABLE),
    (UsageProblem, ExitCode.USAGE),
    (FunctionFailed, ExitCode.FUNCTION_ERROR),
    (BadResponse, ExitCode.SERVER_ERROR),
    (TimedOut, ExitCode.TIMED_OUT),
    (Aborted, ExitCode.ABORTED),
    (DaemonFailed, ExitCode.DAEMON_FAILED),
)
