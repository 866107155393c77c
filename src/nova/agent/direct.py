"""Direct mode: a function's single persistent worker reads Exec frames from the host connection.

In the relayed modes every warm call crosses three processes (host -> agent -> worker and back):
four wake-ups, and the agent's own CPU, which on a small host is as much as the worker's. When a
function has one worker (instance_concurrency 1, persistent; Python or Node) the agent instead
lends the connection to that worker and waits for it to exit; the worker serves Exec and Ping
itself (the DirectLane of bootstraps/python_bootstrap.py and node_bootstrap.js) and the agent
is idle in waitpid(). The worker enforces deadlines by ending itself with SIGALRM (setitimer in
Python, a watchdog thread in Node).

The worker keeps a small shared state file: its phase, and while a handler runs, the Exec's
frame id and start time. When the worker exits the agent reads it:

- handed back: the worker met a frame it does not serve (Init, Drain, Reload, Stop, anything
  invalid) or EOF; it wrote the bytes it had consumed into the file. The agent handles them as
  if read from the connection, then starts a fresh worker, which imports the code afresh; after
  a Drain it reads the connection itself and starts none until the Reload.
- running: the worker died in a handler (SIGALRM at its deadline, a crash, the OOM killer): the
  agent answers that request (Function.Timeout or Runtime.ExitError) and starts a new worker.
- idle: the worker died between calls; nothing is owed; a new worker starts after a short pause.
- reading / replying: it died inside a frame, so the stream has lost its boundaries: the agent
  gives up the connection and the host replaces the instance. So does a state file user code
  scribbled over (the worker's memory and fds are the function's to break).

Frames are read exactly (header, then body) by both sides, so nothing is ever read ahead of the
frame boundary a handback or a crash leaves behind.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import struct
import time
from collections.abc import Mapping

from nova.agent.capture import open_anonymous_file
from nova.agent.channel import Channel
from nova.agent.diagnostics import report
from nova.agent.errors import AgentError, ErrorType
from nova.agent.forked_worker import can_fork_for
from nova.agent.invocation import Invocation
from nova.agent.launch import bootstrap_argv
from nova.agent.spec import InitSpec
from nova.agent.worker import (
    IDLE_RESTART_DELAY_S,
    WorkerProcess,
    discard,
    exit_message,
    timeout_message,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from nova.agent.prestart import PrestartedWorker


# Keep in step with the bootstraps (which cannot import nova).
PHASE_IDLE, PHASE_READING, PHASE_RUNNING, PHASE_REPLYING, PHASE_HANDBACK = 0, 1, 2, 3, 4
STATE_HEADER = struct.Struct("<BxxxId")  # phase, length of what follows, monotonic start time
STATE_ROOM = 1024  # the state head plus the running call's frame id; handed-back bytes follow


def direct_mode_fits(spec: InitSpec) -> bool:
    # A custom runtime's bootstrap speaks HTTP, not frames: the agent always translates.
    return (
        spec.mode == "persistent" and spec.concurrency == 1 and spec.runtime in ("python", "node")
    )


def lane_fd(fd: int) -> int:
    """The host connection under a private number >= 3, for a direct-mode worker to keep."""
    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)


class DirectLane:
    def __init__(
        self,
        spec: InitSpec,
        env: Mapping[str, str],
        channel: Channel,
        fd: int,
        prestarted: PrestartedWorker | None = None,  # its first worker, started before Init
    ) -> None:
        self._spec = spec
        self._env = dict(env)
        self._channel = channel
        self._prestarted = prestarted
        self.used_prestarted = False  # its worker is the pre-started one (the Init reply says)
        if prestarted is not None:
            self._lane_fd, self._state_fd = prestarted.lane_fd, prestarted.state_fd
        else:
            # A private number >= 3: the forked worker puts its own stdio on 0-2.
            self._lane_fd = lane_fd(fd)
            self._state_fd = open_anonymous_file("state", spec.tmp_dir)  # not O_APPEND: pwrite
        self._worker: WorkerProcess | None = None

    def start(self) -> None:
        """Start a worker and wait until it is ready; AgentError(INIT_FAILED) if it cannot."""
        spec = self._spec
        os.ftruncate(self._state_fd, 0)  # zeroed: phase idle
        os.ftruncate(self._state_fd, STATE_ROOM)
        argv = [
            *bootstrap_argv(spec),
            *("--lane-fd", str(self._lane_fd), "--state-fd", str(self._state_fd)),
            *("--max-message-bytes", str(self._channel.max_message_bytes)),
        ]
        deadline = time.monotonic() + spec.init_timeout_s
        prestarted, self._prestarted = self._prestarted, None
        if prestarted is not None:
            worker = prestarted.specialise(spec, self._env)
            problem = worker.ready_problem(deadline, spec.init_timeout_s)
            if problem is None:
                self._worker, self.used_prestarted = worker, True
                return
            discard(worker)  # a fresh worker reports the function's own failure, if it is one
            report(f"the pre-started worker {problem}; starting a new one")
        try:
            worker = WorkerProcess(
                argv,
                self._env,
                spec.code_dir,
                spec.tmp_dir,
                max_line_bytes=1024,  # only the ready line comes through the result pipe
                fork=spec.runtime == "python" and can_fork_for(spec.interpreter),
                extra_fds=(self._lane_fd, self._state_fd),
            )
        except OSError as exc:
            raise AgentError(ErrorType.INIT_FAILED, f"cannot start {argv[0]}: {exc}") from exc
        problem = worker.ready_problem(deadline, spec.init_timeout_s)
        if problem is not None:
            discard(worker)
            raise AgentError(ErrorType.INIT_FAILED, f"the worker {problem}")
        self._worker = worker

    def serve(self) -> bytes | None:
        """Let workers serve until one hands the connection back; return the bytes it handed
        back (to be read before the connection), or None when the stream cannot continue."""
        while True:
            worker = self._worker or self._restarted()
            if worker is None:
                return None
            worker.process.wait()
            status = worker.reap()  # also ends whatever the handler left in the session
            phase, length, started = STATE_HEADER.unpack(
                os.pread(self._state_fd, STATE_HEADER.size, 0)
            )
            self._worker = None
            if phase == PHASE_HANDBACK:
                worker.close()
                return os.pread(self._state_fd, length, STATE_ROOM) if length else b""
            if phase not in (PHASE_IDLE, PHASE_RUNNING):
                worker.close()
                report(f"the worker {status} inside a frame; the connection cannot continue")
                return None
            if phase == PHASE_RUNNING:
                try:
                    frame_id = json.loads(os.pread(self._state_fd, length, STATE_HEADER.size))
                except ValueError:
                    worker.close()
                    report(f"the worker {status} and left an unreadable state; giving up")
                    return None
                self._answer_lost_call(worker, status, frame_id, started)
            else:
                report(f"an idle {self._spec.runtime} worker {status}; restarting it")
                time.sleep(IDLE_RESTART_DELAY_S)
            worker.close()

    def _restarted(self) -> WorkerProcess | None:
        try:
            self.start()
        except AgentError as exc:
            report(f"cannot restart the worker: {exc.message}")
        return self._worker

    def _answer_lost_call(
        self, worker: WorkerProcess, status: str, frame_id: object, started: float
    ) -> None:
        stdout, stderr = worker.tails()
        if worker.process.returncode == -signal.SIGALRM:
            kind, message = ErrorType.TIMEOUT, timeout_message(self._spec.timeout_s)
        else:
            kind, message = ErrorType.EXIT, exit_message(self._spec.runtime, status, stderr)
        job = Invocation({}, b"", frame_id, frame_id, 0.0, None)  # only its reply is used
        job.started -= time.monotonic() - started  # report how long the call ran
        self._channel.failure(job, kind, message, stdout, stderr)

    def stop(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            discard(worker)
        for fd in (self._lane_fd, self._state_fd):
            os.close(fd)
