"""A runtime started before any function is known, for runtimes that cannot fork (Node,
Ruby): a pre-started container instance spends the runtime's start-up while it waits, and Init
only loads the function into it.

The host sends a Prestart frame ``{runtime, interpreter, memory_mb, tmp_dir}`` to an agent that
has no Init yet. The agent starts the runtime as a normal start of a function of that kind
would (same command line, same fds) but told to wait: a Node worker (``--prestart``, started as
a direct-mode worker is) and a Ruby Runtime API client (``NOVA_PRESTART_FD``) write
``{"prestarted":true}`` once the runtime and its libraries are up, then block on stdin. Init of
a function whose runtime would be started exactly so (:meth:`fits`) sends it one line: Node gets
``{"handler", "env", "cwd"}`` and loads the handler, Ruby gets ``{"env", "cwd"}`` and goes on
as a client started with that environment. Either has the function's environment only, its
code directory, and is from then on what a normal start would have spawned. Any other Init
discards it and starts as usual.
"""

from __future__ import annotations

import json
import os

from nova.agent.capture import open_anonymous_file
from nova.agent.direct import direct_mode_fits
from nova.agent.direct import lane_fd as direct_lane_fd
from nova.agent.errors import AgentError, ErrorType
from nova.agent.launch import bootstrap_argv, client_argv, runtime_api_client_argv, runtime_argv
from nova.agent.spec import InitSpec
from nova.agent.worker import WorkerProcess, discard

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from nova.agent.provided import RuntimeClient

PRESTARTED_LINE = b'{"prestarted":true}'
PRESTART_RUNTIMES = ("node", "ruby")
_STARTUP_TIMEOUT_S = 30.0


class PrestartedWorker:
    """A pre-started Node worker and the direct-mode fds it was started with."""

    def __init__(self, argv: list[str], worker: WorkerProcess, lane_fd: int, state_fd: int) -> None:
        self.argv = argv  # without --prestart and the per-process fds
        self.worker = worker
        self.lane_fd = lane_fd
        self.state_fd = state_fd

    @property
    def pid(self) -> int:
        return self.worker.pid

    def discard(self) -> None:
        """Not wanted (Init of another kind of function, or Stop): end it and its fds."""
        discard(self.worker)
        _close(self.lane_fd, self.state_fd)

    def fits(self, spec: InitSpec) -> bool:
        """Would a normal start of ``spec`` have started exactly this runtime?"""
        argv = bootstrap_argv(spec)
        return direct_mode_fits(spec) and argv[: len(self.argv)] == self.argv

    def specialise(self, spec: InitSpec, env: dict[str, str]) -> WorkerProcess:
        """Make the worker ``spec``'s function's; its ready line follows as from a new one."""
        order = {"handler": spec.handler, "env": env, "cwd": spec.code_dir}
        self.worker.send(json.dumps(order).encode() + b"\n")
        return self.worker


class PrestartedClient:
    """A pre-started Runtime API client (Ruby)."""

    def __init__(self, argv: list[str], client: RuntimeClient) -> None:
        self.argv = argv
        self.client = client

    @property
    def pid(self) -> int:
        return self.client.process.pid

    def discard(self) -> None:
        self.client.kill()
        self.client.process.wait()
        self.client.close()

    def fits(self, spec: InitSpec) -> bool:
        return spec.runtime in PRESTART_RUNTIMES and runtime_api_client_argv(spec) == self.argv


Prestarted = PrestartedWorker | PrestartedClient


def prestart(message: dict[str, Any], connection_fd: int, max_bytes: int) -> Prestarted:
    """Start the runtime a Prestart frame asks for and wait until it is up."""
    runtime = message.get("runtime")
    if runtime not in PRESTART_RUNTIMES:
        raise AgentError(ErrorType.INVALID_MESSAGE, f"Prestart: cannot pre-start {runtime!r}")
    try:
        interpreter, memory_mb = str(message["interpreter"]), int(message["memory_mb"])
        tmp_dir = str(message["tmp_dir"])
    except (KeyError, TypeError, ValueError) as exc:
        raise AgentError(ErrorType.INVALID_MESSAGE, f"Prestart: {exc}") from exc
    if runtime == "node":
        argv = runtime_argv(runtime, interpreter, memory_mb)
        return _worker(argv, connection_fd, max_bytes, tmp_dir)
    from nova.agent.provided import prestart_client

    argv = client_argv(runtime, interpreter)
    client = prestart_client(argv, tmp_dir, _STARTUP_TIMEOUT_S)
    if client is None:
        raise AgentError(ErrorType.INIT_FAILED, f"the pre-started {runtime} did not come up")
    return PrestartedClient(argv, client)


def _worker(argv: list[str], connection_fd: int, max_bytes: int, tmp_dir: str) -> PrestartedWorker:
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
        raise AgentError(ErrorType.INIT_FAILED, "the pre-started node did not come up")
    return PrestartedWorker(argv, worker, lane_fd, state_fd)


def _close(*fds: int) -> None:
    for fd in fds:
        os.close(fd)
