"""One long-lived runtime process (persistent mode): spawn, one JSON line in, one line out, kill.

File descriptors of a worker::

    0  request pipe      agent -> worker, one JSON line per invocation (the bootstrap moves it
                         to a private fd and puts /dev/null on 0, so user code cannot read it)
    1  stdout capture    O_APPEND memfd shared with the agent (see capture.py)
    2  stderr capture    idem; also where the runtime writes fatal errors
    N  result pipe       worker -> agent, one JSON line per invocation (--resp-fd N)

The result channel is a private fd rather than stdout so that no user write, C-level or from a
child process, can reach it, and so Node never turns it non-blocking. The worker leads its own
session: killing the process group also ends whatever user code spawned.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Mapping

from nova.agent.capture import last_lines, open_capture_file, read_tail
from nova.agent.forked_worker import ForkedProcess, fork_worker
from nova.agent.launch import READY_LINE

_CHUNK = 1 << 16
_EXIT_GRACE_S = 0.5  # how long a worker that closed its pipe may take to exit before SIGKILL


class LineTooLong(Exception):
    """The worker wrote more than the line limit without a newline."""


class WorkerProcess:
    def __init__(
        self,
        argv: list[str],
        env: Mapping[str, str],
        cwd: str,
        tmp_dir: str,
        max_line_bytes: int,
        *,
        fork: bool = False,  # fork the agent instead of spawning (see forked_worker.py)
        extra_fds: tuple[int, ...] = (),  # more fds the worker keeps (direct mode's lane, state)
    ) -> None:
        self._max_line = max_line_bytes
        self._buffer = bytearray()
        self._status: int | None = None
        self._closed = False
        self._send_lock = threading.Lock()  # a send never writes into an fd number close() freed
        self.stdout_fd = open_capture_file("stdout", tmp_dir)
        self.stderr_fd = open_capture_file("stderr", tmp_dir)
        request_read, self._request = os.pipe()
        self._result, result_write = os.pipe()
        command = [*argv, "--resp-fd", str(result_write)]
        try:
            self.process: subprocess.Popen[bytes] | ForkedProcess
            if fork:
                fds = (request_read, self.stdout_fd, self.stderr_fd)
                self.process = fork_worker(command, env, cwd, fds, (result_write, *extra_fds))
            else:
                self.process = subprocess.Popen(
                    command,
                    stdin=request_read,
                    stdout=self.stdout_fd,
                    stderr=self.stderr_fd,
                    pass_fds=(result_write, *extra_fds),
                    env=env,
                    cwd=cwd,
                    start_new_session=True,
                )
        except OSError:
            self._close_fds(self._request, self._result)
            raise
        finally:
            self._close_fds(request_read, result_write)
        self._poller = select.poll()
        self._poller.register(self._result, select.POLLIN)

    @property
    def pid(self) -> int:
        return self.process.pid

    def send(self, line: bytes) -> None:
        """Write one request line; a dead worker is noticed by the reader (EOF), not here."""
        view = memoryview(line)
        with self._send_lock:
            if self._closed:
                return
            try:
                while view:
                    view = view[os.write(self._request, view) :]
            except OSError:
                return

    def read_line(self, timeout_s: float | None = None) -> bytes | None:
        """The next result line without its newline; None at EOF.

        Blocks without a timeout (the warm path: one read syscall); with one, raises
        TimeoutError when nothing complete arrived in time.
        """
        buffer = self._buffer
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            end = buffer.find(b"\n")
            if end >= 0:
                line = bytes(buffer[:end])
                del buffer[: end + 1]
                return line
            if len(buffer) > self._max_line:
                raise LineTooLong(f"the worker wrote {len(buffer)} bytes without a newline")
            if deadline is not None:
                remaining_ms = max(0, int((deadline - time.monotonic()) * 1000))
                if not self._poller.poll(remaining_ms):
                    raise TimeoutError
            chunk = os.read(self._result, _CHUNK)
            if not chunk:
                return None
            if not buffer and chunk.endswith(b"\n") and chunk.find(b"\n") == len(chunk) - 1:
                return chunk[:-1]  # the usual case: exactly one whole line, no copy into buffer
            buffer += chunk

    def ready_problem(self, deadline: float, init_timeout_s: float) -> str | None:
        """None once the worker wrote its ready line (by monotonic ``deadline``), else what
        went wrong."""
        try:
            line = self.read_line(max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            return f"did not start within {init_timeout_s:g}s"
        except LineTooLong:
            return "wrote an endless line instead of its ready line"
        if line is None:
            status = self.reap()
            return f"{status} while starting" + _stderr_tail(self.tails()[1])
        if line != READY_LINE:
            return f"wrote {line[:200]!r} instead of its ready line"
        return None

    def kill(self) -> None:
        """SIGKILL the worker's whole session; safe to call from any thread, at any time."""
        if self._status is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)

    def reap(self) -> str:
        """Wait for the worker to end (killing it if it lingers); describe how it ended."""
        if self._status is None:
            try:
                self._status = self.process.wait(_EXIT_GRACE_S)
            except subprocess.TimeoutExpired:
                self.kill()
                self._status = self.process.wait()
            # Children that user code left behind share the session: end them as well.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
        return describe_exit(self._status)

    def tails(self) -> tuple[str, str]:
        return read_tail(self.stdout_fd), read_tail(self.stderr_fd)

    def close(self) -> None:
        with self._send_lock:  # the process is dead by now, so a pending send fails fast
            if self._closed:
                return
            self._closed = True
        self._close_fds(self._request, self._result, self.stdout_fd, self.stderr_fd)

    @staticmethod
    def _close_fds(*fds: int) -> None:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)


def describe_exit(status: int) -> str:
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        return f"killed by {name}"
    return f"exited with code {status}"


def discard(worker: WorkerProcess) -> None:
    """Kill, reap and close a worker that will not be used."""
    worker.kill()
    worker.reap()
    worker.close()


# User code that kills its idle worker (a stray thread, say) must not spin the agent in a loop.
IDLE_RESTART_DELAY_S = 0.2


def timeout_message(timeout_s: float) -> str:
    """Function.Timeout's message when the agent side stopped the worker (both persistent
    runners say the same)."""
    return (
        f"the function did not finish within its timeout of {timeout_s:g}s; its worker was stopped"
    )


def exit_message(runtime: str, status: str, stderr: str) -> str:
    """Runtime.ExitError's message for a worker that died during an invocation."""
    return f"the {runtime} worker {status} during the invocation" + _stderr_tail(stderr)


def _stderr_tail(stderr: str) -> str:
    """The end of a worker's stderr, as a suffix for an error message."""
    tail = last_lines(stderr)
    return f"; its stderr ends with:\n{tail}" if tail else ""
