"""A runtime worker started before any function is known, for runtimes that cannot fork
(Node): a pre-started container instance spends the runtime's start-up while it waits, and
Init only loads the function into it.

The host sends a Prestart frame ``{runtime, interpreter, memory_mb}`` to an agent that has no
Init yet. The agent starts the worker as a direct-mode worker would be started (same fds, the
runtime's flags for that memory size) but with ``--prestart``: the bootstrap writes
``{"prestarted":true}`` once the runtime is up, then blocks on its request pipe. Init of a
function whose worker would be started exactly so (runtime, interpreter, memory size; direct
mode) sends it one line ``{"handler", "env", "cwd"}``, and the worker becomes that function's:
the function's environment only, its code directory, its handler loaded; from there on it is
the worker a normal start would have spawned. Any other Init discards it and starts as usual.
"""

from __future__ import annotations

import json
import os

from nova.agent.capture import open_anonymous_file
from nova.agent.direct import lane_fd as direct_lane_fd
from nova.agent.errors import AgentError, ErrorType
from nova.agent.launch import runtime_argv
from nova.agent.spec import InitSpec
from nova.agent.worker import WorkerProcess, discard

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PRESTARTED_LINE = b'{"prestarted":true}'
PRESTART_RUNTIMES = ("node",)
_STARTUP_TIMEOUT_S = 30.0


class Prestarted:
    """One pre-started worker and the direct-mode fds it was started with."""

    def __init__(self, argv: list[str], worker: WorkerProcess, lane_fd: int, state_fd: int) -> None:
        self.argv = argv  # without --prestart and the per-process fds
        self.worker = worker
        self.lane_fd = lane_fd
        self.state_fd = state_fd

    def discard(self) -> None:
        """Not wanted (Init of another kind of function, or Stop): end it and its fds."""
        discard(self.worker)
        _close(self.lane_fd, self.state_fd)

    def fits(self, argv: list[str]) -> bool:
        """Would a normal start (``argv``: its worker's command line) have started exactly
        this runtime?"""
        return argv[: len(self.argv)] == self.argv

    def specialise(self, spec: InitSpec, env: dict[str, str]) -> WorkerProcess:
        """Make the worker ``spec``'s function's; its ready line follows as from a new one."""
        order = {"handler": spec.handler, "env": env, "cwd": spec.code_dir}
        self.worker.send(json.dumps(order).encode() + b"\n")
        return self.worker


def prestart(message: dict[str, Any], connection_fd: int, max_bytes: int) -> Prestarted:
    """Start the worker a Prestart frame asks for and wait until its runtime is up."""
    runtime = message.get("runtime")
    if runtime not in PRESTART_RUNTIMES:
        raise AgentError(ErrorType.INVALID_MESSAGE, f"Prestart: cannot pre-start {runtime!r}")
    try:
        argv = runtime_argv(runtime, str(message["interpreter"]), int(message["memory_mb"]))
        tmp_dir = str(message["tmp_dir"])
    except (KeyError, TypeError, ValueError) as exc:
        raise AgentError(ErrorType.INVALID_MESSAGE, f"Prestart: {exc}") from exc
    lane_fd = direct_lane_fd(connection_fd)
    state_fd = open_anonymous_file("state", tmp_dir)
    command = [
        *argv,
        *("--prestart", "1", "--lane-fd", str(lane_fd), "--state-fd", str(state_fd)),
        *("--max-message-bytes", str(max_bytes)),
    ]
    try:
        worker = WorkerProcess(
            command, dict(os.environ), tmp_dir, tmp_dir, 1024, extra_fds=(lane_fd, state_fd)
        )
    except OSError as exc:
        _close(lane_fd, state_fd)
        raise AgentError(ErrorType.INIT_FAILED, f"cannot start {argv[0]}: {exc}") from exc
    try:
        line = worker.read_line(_STARTUP_TIMEOUT_S)
    except TimeoutError:
        line = None
    if line != PRESTARTED_LINE:
        discard(worker)
        _close(lane_fd, state_fd)
        raise AgentError(ErrorType.INIT_FAILED, f"the pre-started {runtime} did not come up")
    return Prestarted(argv, worker, lane_fd, state_fd)


def _close(*fds: int) -> None:
    for fd in fds:
        os.close(fd)
