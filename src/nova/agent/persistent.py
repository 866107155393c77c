"""Persistent mode (MISSION F5): ``concurrency`` long-lived workers, each with one reader thread.

Whoever holds an invocation dispatches it: the frame loop writes the request line straight into
an idle worker's pipe; that worker's reader thread, blocked on its result pipe, sends the reply
and hands the worker the next queued invocation. A warm call therefore costs one pipe write, one
pipe read and one thread wake-up: no per-call thread, process or file. One watchdog thread kills
a worker whose invocation passed its deadline. A reader that sees its worker die answers the
invocation (Runtime.ExitError, or the timeout) and starts a fresh worker for the next one.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping

from nova.agent.channel import Channel
from nova.agent.diagnostics import report
from nova.agent.errors import AgentError, ErrorType
from nova.agent.forked_worker import can_fork_for
from nova.agent.invocation import Invocation
from nova.agent.launch import bootstrap_argv
from nova.agent.spec import InitSpec
from nova.agent.worker import (
    IDLE_RESTART_DELAY_S,
    LineTooLong,
    WorkerProcess,
    discard,
    exit_message,
    timeout_message,
)

_LINE_SLACK = 64 * 1024  # a result line may exceed the frame limit a little before it is spliced
_MAX_BACKOFF_S = 2.0
_JOIN_TIMEOUT_S = 5.0

Fault = tuple[ErrorType, str]


class _Slot:
    """A worker position: the current process, its invocation, and why it is being killed."""

    __slots__ = ("fault", "job", "worker")

    def __init__(self) -> None:
        self.worker: WorkerProcess | None = None
        self.job: Invocation | None = None
        self.fault: Fault | None = None


class PersistentRunner:
    def __init__(self, spec: InitSpec, env: Mapping[str, str], channel: Channel) -> None:
        self._spec = spec
        self._env = dict(env)
        self._argv = bootstrap_argv(spec)
        self._channel = channel
        self._timeout_message = timeout_message(spec.timeout_s)
        self._lock = threading.Lock()
        self._watch = threading.Condition(self._lock)  # wakes the watchdog
        self._settled = threading.Condition(self._lock)  # nothing queued or running
        self._slots = [_Slot() for _ in range(spec.concurrency)]
        self._idle: list[_Slot] = []
        self._queue: deque[Invocation] = deque()
        self._running = 0
        self._wake_at = math.inf  # when the watchdog is due to look again (epoch ms)
        self._stopping = False
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- lifecycle (frame-loop thread) --------------------------------------------------------

    def start(self) -> None:
        deadline = time.monotonic() + self._spec.init_timeout_s
        try:
            for slot in self._slots:
                slot.worker = self._spawn()
            for worker in [slot.worker for slot in self._slots if slot.worker is not None]:
                problem = worker.ready_problem(deadline, self._spec.init_timeout_s)
                if problem is not None:
                    raise AgentError(ErrorType.INIT_FAILED, f"the worker {problem}")
        except OSError as exc:
            self._discard_workers()
            raise AgentError(ErrorType.INIT_FAILED, f"cannot start {self._argv[0]}: {exc}") from exc
        except AgentError:
            self._discard_workers()
            raise
        self._idle = self._slots[::-1]  # pop() hands out the first worker first
        for index, slot in enumerate(self._slots):
            self._thread(f"nova-worker-{index}", self._serve, slot)
        self._thread("nova-watchdog", self._watchdog)

    def drain(self, timeout_s: float) -> bool:
        with self._lock:
            return self._settled.wait_for(
                lambda: self._stopping or (not self._running and not self._queue), timeout_s
            )

    def stop(self) -> None:
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
            queued = list(self._queue)
            self._queue.clear()
            for slot in self._slots:
                if slot.worker is not None:
                    slot.worker.kill()
            self._watch.notify_all()
            self._settled.notify_all()
        self._stopped.set()
        for thread in self._threads:
            thread.join(_JOIN_TIMEOUT_S)
        for job in queued:
            self._channel.failure(job, ErrorType.STOPPED, "the instance was stopped")

    # -- dispatch -----------------------------------------------------------------------------

    def submit(self, job: Invocation) -> None:
        with self._lock:
            stopping = self._stopping
            if not stopping:
                self._watch_deadline(job)
                if not self._idle:
                    self._queue.append(job)
                    return
                slot = self._idle.pop()
                slot.job = job
                self._running += 1
        if stopping:
            self._channel.failure(job, ErrorType.STOPPED, "the instance is stopping")
        else:
            self._dispatch(slot, job)

    def _watch_deadline(self, job: Invocation) -> None:  # lock held
        if job.deadline_ms < self._wake_at:
            self._wake_at = job.deadline_ms
            self._watch.notify()

    @staticmethod
    def _dispatch(slot: _Slot, job: Invocation) -> None:
        worker = slot.worker
        if worker is not None:  # always, for a slot that was handed a job
            job.started = time.perf_counter()
            worker.send(job.worker_request())

    def _next(self, slot: _Slot, finished: bool) -> Invocation | None:  # lock held
        """The slot's worker is free: give it a queued invocation, or park it as idle."""
        if finished:
            slot.job = None
            self._running -= 1
        if slot.fault is None and not self._stopping:
            if self._queue:
                job = self._queue.popleft()
                slot.job = job
                self._running += 1
                return job
            self._idle.append(slot)
        self._notify_if_settled()
        return None

    def _notify_if_settled(self) -> None:  # lock held
        if not self._running and not self._queue:
            self._settled.notify_all()

    # -- one reader thread per slot -------------------------------------------------------------

    def _serve(self, slot: _Slot) -> None:
        worker = slot.worker
        while worker is not None:
            try:
                line = worker.read_line()
            except LineTooLong:
                self._fault(slot, ErrorType.RESPONSE_TOO_LARGE, "the response is too large")
                line = None
            if line is None:
                worker = self._replace(slot, worker)
                continue
            job = slot.job  # set before its request was written, cleared only by this thread
            if job is None or not self._channel.result_line(job, line):
                self._fault(slot, ErrorType.INVALID_RESPONSE, "the worker broke the line protocol")
                continue
            with self._lock:
                following = self._next(slot, finished=True)
            if following is not None:
                self._dispatch(slot, following)

    def _fault(self, slot: _Slot, kind: ErrorType, message: str) -> None:
        with self._lock:
            if slot.fault is None:
                slot.fault = (kind, message)
            if slot.worker is not None:
                slot.worker.kill()

    def _replace(self, slot: _Slot, worker: WorkerProcess) -> WorkerProcess | None:
        """The worker's result pipe closed: answer its invocation, start a new worker."""
        status = worker.reap()
        stdout, stderr = worker.tails()
        worker.close()
        with self._lock:
            job, fault = slot.job, slot.fault
            slot.worker, slot.job, slot.fault = None, None, None
            if slot in self._idle:
                self._idle.remove(slot)
            if job is not None:
                self._running -= 1
                self._notify_if_settled()
            stopping = self._stopping
        if job is not None:
            if fault is not None:
                kind, message = fault
            elif stopping:
                kind, message = ErrorType.STOPPED, "the instance was stopped during the invocation"
            else:
                kind, message = ErrorType.EXIT, exit_message(self._spec.runtime, status, stderr)
            self._channel.failure(job, kind, message, stdout, stderr)
        elif not stopping:
            report(f"an idle {self._spec.runtime} worker {status}; restarting it")
            stopping = self._stopped.wait(IDLE_RESTART_DELAY_S)
        return None if stopping else self._restart(slot)

    def _restart(self, slot: _Slot) -> WorkerProcess | None:
        backoff = 0.05
        while True:
            problem: str | None = None
            try:
                worker: WorkerProcess | None = self._spawn()
            except OSError as exc:
                worker, problem = None, f"cannot be started: {exc}"
            if worker is not None:
                with self._lock:
                    stopping = self._stopping
                    if not stopping:
                        slot.worker = worker
                if stopping:
                    discard(worker)
                    return None
                deadline = time.monotonic() + self._spec.init_timeout_s
                problem = worker.ready_problem(deadline, self._spec.init_timeout_s)
                if problem is None:
                    with self._lock:
                        following = self._next(slot, finished=False)
                    if following is not None:
                        self._dispatch(slot, following)
                    return worker
                discard(worker)
                with self._lock:
                    slot.worker = None
            # A worker that cannot start must not leave queued invocations waiting forever.
            with self._lock:
                job = self._queue.popleft() if self._queue else None
                self._notify_if_settled()
            if job is not None:
                self._channel.failure(job, ErrorType.EXIT, f"the worker {problem}")
            if self._stopped.wait(backoff):
                return None
            backoff = min(backoff * 2, _MAX_BACKOFF_S)

    # -- the watchdog -------------------------------------------------------------------------

    def _watchdog(self) -> None:
        while True:
            with self._lock:
                if self._stopping:
                    return
                now_ms = time.time() * 1000
                earliest = math.inf
                for slot in self._slots:
                    job = slot.job
                    if job is None or slot.fault is not None:
                        continue
                    if job.deadline_ms <= now_ms:
                        slot.fault = (ErrorType.TIMEOUT, self._timeout_message)
                        if slot.worker is not None:
                            slot.worker.kill()
                    else:
                        earliest = min(earliest, job.deadline_ms)
                expired = [job for job in self._queue if job.deadline_ms <= now_ms]
                if expired:
                    self._queue = deque(job for job in self._queue if job.deadline_ms > now_ms)
                    self._notify_if_settled()
                for job in self._queue:
                    earliest = min(earliest, job.deadline_ms)
                self._wake_at = earliest
                if not expired:
                    wait_s = None if earliest == math.inf else (earliest - now_ms) / 1000
                    self._watch.wait(wait_s)
                    continue
            for job in expired:
                self._channel.failure(job, ErrorType.TIMEOUT, self._timeout_message)

    # -- helpers ------------------------------------------------------------------------------

    def _spawn(self) -> WorkerProcess:
        max_line = self._channel.max_message_bytes + _LINE_SLACK
        spec = self._spec
        fork = spec.runtime == "python" and can_fork_for(spec.interpreter)
        return WorkerProcess(
            self._argv, self._env, spec.code_dir, spec.tmp_dir, max_line, fork=fork
        )

    def _discard_workers(self) -> None:
        for slot in self._slots:
            if slot.worker is not None:
                discard(slot.worker)
                slot.worker = None

    def _thread(self, name: str, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)
