"""Process mode (MISSION F5): a fresh runtime process for every invocation.

The request goes to a file in tmp_dir; the bootstrap runs with ``--once FILE`` and writes its
result line to an inherited pipe (``--resp-fd``), so the user's stdout and stderr, read from the
child's own pipes, stay apart from it. A fixed set of ``concurrency`` threads runs invocations;
each child leads its own session, which is killed once the result is in or the deadline passes.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import select
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from nova.agent.capture import TailBuffer, last_lines
from nova.agent.channel import Channel
from nova.agent.diagnostics import report
from nova.agent.errors import ErrorType
from nova.agent.invocation import Invocation
from nova.agent.launch import bootstrap_argv
from nova.agent.spec import InitSpec
from nova.agent.worker import describe_exit

_CHUNK = 1 << 16
_EXIT_GRACE_S = 0.5  # after the result: time for the child to exit, and for pipes to drain
_JOIN_TIMEOUT_S = 5.0


@dataclass(slots=True)
class _Outcome:
    result: bytearray = field(default_factory=bytearray)
    stdout: TailBuffer = field(default_factory=TailBuffer)
    stderr: TailBuffer = field(default_factory=TailBuffer)
    status: str = ""
    timed_out: bool = False
    too_large: bool = False


class ProcessRunner:
    def __init__(self, spec: InitSpec, env: Mapping[str, str], channel: Channel) -> None:
        self._spec = spec
        self._env = dict(env)
        self._argv = bootstrap_argv(spec)
        self._channel = channel
        self._jobs: queue.SimpleQueue[Invocation | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._outstanding = 0
        self._running: set[subprocess.Popen[bytes]] = set()
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._names = itertools.count()

    def start(self) -> None:
        for index in range(self._spec.concurrency):
            thread = threading.Thread(target=self._work, name=f"nova-process-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def submit(self, job: Invocation) -> None:
        with self._lock:
            stopping = self._stopping
            if not stopping:
                self._outstanding += 1
        if stopping:
            self._channel.failure(job, ErrorType.STOPPED, "the instance is stopping")
        else:
            self._jobs.put(job)

    def drain(self, timeout_s: float) -> bool:
        with self._lock:
            return self._settled.wait_for(
                lambda: self._stopping or not self._outstanding, timeout_s
            )

    def stop(self) -> None:
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
            running = list(self._running)
            self._settled.notify_all()
        for process in running:
            _kill_session(process)
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join(_JOIN_TIMEOUT_S)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                if self._stopping:
                    self._channel.failure(job, ErrorType.STOPPED, "the instance was stopped")
                else:
                    self._run(job)
            except Exception:  # a thread boundary: log it, answer, keep the thread serving
                report("a process-mode invocation failed in the agent", with_traceback=True)
                self._channel.failure(job, ErrorType.EXIT, "the agent failed to run the process")
            finally:
                with self._lock:
                    self._outstanding -= 1
                    if not self._outstanding:
                        self._settled.notify_all()

    def _run(self, job: Invocation) -> None:
        spec = self._spec
        path = os.path.join(spec.tmp_dir, f"nova-event-{os.getpid()}-{next(self._names)}.json")
        job.started = time.perf_counter()
        pipes = [os.pipe() for _ in range(3)]  # result, stdout, stderr
        (result_read, result_write), (stdout_read, stdout_write), (stderr_read, stderr_write) = (
            pipes
        )
        readers = (result_read, stdout_read, stderr_read)
        try:
            try:
                with open(path, "wb") as file:
                    file.write(job.worker_request())
                process = subprocess.Popen(
                    [*self._argv, "--once", path, "--resp-fd", str(result_write)],
                    stdin=subprocess.DEVNULL,
                    stdout=stdout_write,
                    stderr=stderr_write,
                    pass_fds=(result_write,),
                    env={**self._env, **job.environment()},
                    cwd=spec.code_dir,
                    start_new_session=True,
                )
            except OSError as exc:
                self._channel.failure(job, ErrorType.EXIT, f"cannot start {self._argv[0]}: {exc}")
                return
            finally:
                _close(*(write for _, write in pipes))
            with self._lock:
                self._running.add(process)
            try:
                outcome = self._collect(process, *readers, deadline_ms=job.deadline_ms)
            finally:
                with self._lock:
                    self._running.discard(process)
        finally:
            _close(*readers)
            with contextlib.suppress(OSError):
                os.unlink(path)
        self._answer(job, outcome)

    def _collect(
        self,
        process: subprocess.Popen[bytes],
        result_fd: int,
        stdout_fd: int,
        stderr_fd: int,
        deadline_ms: float,
    ) -> _Outcome:
        outcome = _Outcome()
        sinks = {stdout_fd: outcome.stdout, stderr_fd: outcome.stderr}
        open_fds = {result_fd, *sinks}
        poller = select.poll()
        for fd in open_fds:
            poller.register(fd, select.POLLIN)
        limit = self._channel.max_message_bytes
        while result_fd in open_fds:  # the result pipe closes when the bootstrap is done
            remaining_ms = deadline_ms - time.time() * 1000
            if remaining_ms <= 0:
                outcome.timed_out = True
                break
            for fd, _ in poller.poll(max(1, int(remaining_ms))):
                chunk = os.read(fd, _CHUNK)
                if not chunk:
                    poller.unregister(fd)
                    open_fds.discard(fd)
                elif fd != result_fd:
                    sinks[fd].feed(chunk)
                else:
                    outcome.result += chunk
                    if len(outcome.result) > limit:
                        outcome.too_large = True
                        poller.unregister(result_fd)
                        open_fds.discard(result_fd)
                        break
        if result_fd in open_fds:
            poller.unregister(result_fd)
            open_fds.discard(result_fd)
        if outcome.timed_out or outcome.too_large:
            _kill_session(process)
        try:
            status = process.wait(_EXIT_GRACE_S)
        except subprocess.TimeoutExpired:
            _kill_session(process)
            status = process.wait()
        _kill_session(process)  # whatever the function left running in its session
        outcome.status = describe_exit(status)
        _drain(poller, sinks, open_fds)
        return outcome

    def _answer(self, job: Invocation, outcome: _Outcome) -> None:
        stdout, stderr = outcome.stdout.text(), outcome.stderr.text()
        channel = self._channel
        if outcome.timed_out:
            message = f"the function did not finish within its timeout of {self._spec.timeout_s:g}s"
            channel.failure(job, ErrorType.TIMEOUT, message, stdout, stderr)
            return
        if outcome.too_large:
            message = f"the response exceeds the {channel.max_message_bytes}-byte message limit"
            channel.failure(job, ErrorType.RESPONSE_TOO_LARGE, message, stdout, stderr)
            return
        try:
            result = json.loads(outcome.result) if outcome.result.strip() else None
        except ValueError:
            result = None
        if not isinstance(result, dict):
            if self._stopping:
                kind, message = ErrorType.STOPPED, "the instance was stopped during the invocation"
            else:
                kind = ErrorType.EXIT
                message = f"the {self._spec.runtime} process {outcome.status} without a result"
                tail = last_lines(stderr)
                message += f"; its stderr ends with:\n{tail}" if tail else ""
            channel.failure(job, kind, message, stdout, stderr)
            return
        error = result.get("error")
        channel.result(
            job, result.get("output"), error if isinstance(error, dict) else None, stdout, stderr
        )


def _drain(poller: select.poll, sinks: Mapping[int, TailBuffer], open_fds: set[int]) -> None:
    """Read what is left in the output pipes; every writer is dead, so EOF comes quickly."""
    deadline = time.monotonic() + _EXIT_GRACE_S
    while open_fds and time.monotonic() < deadline:
        for fd, _ in poller.poll(int(_EXIT_GRACE_S * 1000)):
            chunk = os.read(fd, _CHUNK)
            if chunk:
                sinks[fd].feed(chunk)
            else:
                poller.unregister(fd)
                open_fds.discard(fd)


def _close(*fds: int) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def _kill_session(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
