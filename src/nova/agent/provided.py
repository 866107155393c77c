"""Custom runtimes (``runtime: provided``): the function's own ``bootstrap`` behind the Runtime API.

The same runner serves languages for which Nova ships a Runtime API client (Ruby, PHP:
bootstraps/), started under the runtime's interpreter instead of the package's ``bootstrap``.

The agent starts ``<code>/bootstrap`` with ``AWS_LAMBDA_RUNTIME_API`` (and ``NOVA_RUNTIME_API``)
naming a Runtime API served on the instance's loopback for this bootstrap alone
(runtime_api.py), and translates: an Exec frame becomes the body of the bootstrap's pending
``GET …/invocation/next``; its ``POST …/response`` or ``…/error`` becomes the Exec's reply.

One bootstrap, one invocation at a time (as on Lambda). Its life::

    starting --GET next--> waiting --event--> busy --POST response/error--> between --GET next--> …
       |  \\--POST init/error or exit--> failed: the next invocation gets that error
       \\--exit (or killed at a timeout)--> none: the next invocation starts a new bootstrap

The bootstrap is started at Init and given up to half the Init budget to ask for its first
event; a slow or hung one is not an Init failure (the invocation's own deadline bounds it),
so a broken bootstrap costs one clear invocation error, never the instance. A bootstrap's
stdout and stderr go to the same append-only capture files as a worker's (capture.py), and each
invocation reports what was written while it ran.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import select
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Mapping

from nova.agent.capture import CAPTURE_LIMIT, last_lines, open_capture_file, tail_text
from nova.agent.channel import Channel
from nova.agent.environment import amzn_trace_id
from nova.agent.errors import ErrorType, error_object
from nova.agent.invocation import Invocation
from nova.agent.launch import BOOTSTRAPS, runtime_api_client_argv
from nova.agent.runtime_api import ApiRefusal, RuntimeApiServer
from nova.agent.spec import InitSpec
from nova.agent.worker import describe_exit

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:  # typing is only needed by the type checker; importing it costs start-up time
    from typing import Any

BOOTSTRAP = "bootstrap"
INIT_ERROR = "Runtime.InitError"  # init/error without an errorType, or death before /next
_LINE_SLACK = 64 * 1024
_POLL_S = 1.0  # how often a blocked /next looks whether the runner stopped
_EXIT_GRACE_S = 0.5


def runtime_api_environment(spec: InitSpec, address: str) -> dict[str, str]:
    """The variables AWS's runtime interface clients (and Lambda-minded bootstraps) read."""
    return {
        "AWS_LAMBDA_RUNTIME_API": address,
        "NOVA_RUNTIME_API": address,
        "_HANDLER": spec.handler,
        "LAMBDA_TASK_ROOT": spec.code_dir,
        "LAMBDA_RUNTIME_DIR": spec.code_dir,
        "AWS_LAMBDA_FUNCTION_NAME": spec.function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": spec.function_version,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(int(spec.memory_mb)),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.function_name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": f"nova/{spec.function_version}/{os.getpid()}",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
    }


def function_arn(name: str) -> str:
    """The ARN a function's code sees (Lambda's shape, Nova's placeholder region/account)."""
    return f"arn:aws:lambda:nova:000000000000:function:{name}"


class RuntimeClient:
    """One bootstrap process and its capture files."""

    def __init__(
        self,
        argv: list[str],
        env: Mapping[str, str],
        cwd: str,
        tmp_dir: str,
        ready_fd: int | None = None,  # pre-started (prestart_client): it waits on stdin
    ) -> None:
        self.stdout_fd = open_capture_file("stdout", tmp_dir)
        self.stderr_fd = open_capture_file("stderr", tmp_dir)
        try:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL if ready_fd is None else subprocess.PIPE,
                stdout=self.stdout_fd,
                stderr=self.stderr_fd,
                pass_fds=() if ready_fd is None else (ready_fd,),
                env=env,
                cwd=cwd,
                start_new_session=True,  # killing the group ends what the bootstrap spawned
            )
        except OSError:
            self.close()
            raise
        self.marks = (0, 0)  # capture sizes when the current invocation was handed over
        self.specialised = False  # a pre-started one became a function's

    def specialise(self, env: Mapping[str, str], cwd: str) -> None:
        """A pre-started client: go on as one started with ``env`` in ``cwd`` (OSError: it
        died while it waited)."""
        assert self.process.stdin is not None  # started with ready_fd
        order = json.dumps({"env": dict(env), "cwd": cwd}).encode()
        self.process.stdin.write(order + b"\n")
        self.process.stdin.close()
        self.specialised = True

    def mark(self) -> None:
        self.marks = (_size(self.stdout_fd), _size(self.stderr_fd))

    def output_since_mark(self) -> tuple[str, str]:
        return _since(self.stdout_fd, self.marks[0]), _since(self.stderr_fd, self.marks[1])

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def close(self) -> None:
        for fd in (self.stdout_fd, self.stderr_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


def prestart_client(argv: list[str], tmp_dir: str, timeout_s: float) -> RuntimeClient | None:
    """A client started before any function is known: it loads its runtime and libraries,
    says so on a pipe (``NOVA_PRESTART_FD``), then waits for :meth:`RuntimeClient.specialise`.
    None if it did not come up within ``timeout_s``."""
    ready_read, ready_write = os.pipe()
    env = {**os.environ, "NOVA_PRESTART_FD": str(ready_write)}
    try:
        client = RuntimeClient(argv, env, tmp_dir, tmp_dir, ready_write)
    except OSError:
        os.close(ready_read)
        return None
    finally:
        os.close(ready_write)
    try:
        ready = select.select([ready_read], [], [], timeout_s)[0] and os.read(ready_read, 64)
    finally:
        os.close(ready_read)
    if ready and ready.strip() == b'{"prestarted":true}':
        return client
    client.kill()
    client.process.wait()
    client.close()
    return None


class ProvidedRunner:
    """The Runner (runner.py) for ``provided`` functions, and the Runtime API's state."""

    def __init__(
        self,
        spec: InitSpec,
        env: Mapping[str, str],
        channel: Channel,
        prestarted: RuntimeClient | None = None,  # its first bootstrap, started before Init
    ) -> None:
        self._spec = spec
        self._channel = channel
        self._prestarted = prestarted
        if spec.runtime in BOOTSTRAPS:  # a language Nova ships a Runtime API client for
            self._argv = runtime_api_client_argv(spec)
        else:
            self._argv = [os.path.join(spec.code_dir, BOOTSTRAP)]
        self._server = RuntimeApiServer(self, channel.max_message_bytes - _LINE_SLACK)
        self._env = {**env, **runtime_api_environment(spec, self._server.address)}
        self._cond = threading.Condition()
        self._bootstrap: RuntimeClient | None = None
        self._phase = "none"  # none | starting | waiting | busy | between
        self._queue: deque[Invocation] = deque()
        self._current: Invocation | None = None
        self._answered: str | None = None  # the last request id answered (403, not 400)
        self._pending_error: dict[str, Any] | None = None  # for the next invocation
        self._stopping = False
        self._threads: list[threading.Thread] = []

    # -- Runner --------------------------------------------------------------------------------

    def start(self) -> None:
        self._server.start()
        watchdog = threading.Thread(target=self._watchdog, name="nova-watchdog", daemon=True)
        watchdog.start()
        self._threads.append(watchdog)
        with self._cond:
            self._spawn()
            # A bootstrap gets half the Init budget to ask for its first event: the instance is
            # ready sooner for the usual fast bootstrap, and a slow one is not an Init failure.
            budget = min(self._spec.init_timeout_s, self._spec.timeout_s) / 2
            self._cond.wait_for(lambda: self._phase != "starting", budget)

    def submit(self, job: Invocation) -> None:
        with self._cond:
            error = None
            if self._stopping:
                error = error_object(ErrorType.STOPPED, "the instance is stopping")
            elif self._pending_error is not None:
                error, self._pending_error = self._pending_error, None
            else:
                if self._bootstrap is None:
                    self._spawn()
                self._queue.append(job)
                self._cond.notify_all()
                return
        self._channel.result(job, None, error)

    def drain(self, timeout_s: float) -> bool:
        with self._cond:
            return self._cond.wait_for(
                lambda: self._stopping or (self._current is None and not self._queue), timeout_s
            )

    def stop(self) -> None:
        with self._cond:
            if self._stopping:
                return
            self._stopping = True
            jobs = [*self._queue, *([self._current] if self._current else [])]
            self._queue.clear()
            self._current = None
            if self._bootstrap is not None:
                self._bootstrap.kill()
            self._cond.notify_all()
        self._server.stop()
        for thread in self._threads:
            thread.join(5.0)
        for job in jobs:
            self._channel.failure(job, ErrorType.STOPPED, "the instance was stopped")

    # -- Runtime API backend (server threads) -----------------------------------------------------

    def next_event(self) -> tuple[bytes, dict[str, str]]:
        with self._cond:
            stale = None
            if self._phase == "busy" and self._current is not None:
                stale, self._current = self._current, None
            if self._phase in ("starting", "busy", "between"):
                self._phase = "waiting"
                self._cond.notify_all()
            while not self._queue and not self._stopping:
                self._cond.wait(_POLL_S)
            if self._stopping:
                raise ApiRefusal(500, "Runtime.Stopping", "the instance is stopping; exit")
            job = self._queue.popleft()
            self._current, self._phase = job, "busy"
            if self._bootstrap is not None:
                self._bootstrap.mark()
            job.started = time.perf_counter()
        if stale is not None:
            self._answer(
                stale,
                None,
                error_object(
                    ErrorType.INVALID_RESPONSE,
                    "the bootstrap asked for the next event without answering this one",
                ),
            )
        return _event_body(job), _event_headers(job, self._spec)

    def post_response(self, request_id: str, body: bytes) -> None:
        job = self._take(request_id)
        if not body.strip():
            output: Any = None
        else:
            try:
                output = json.loads(body)
            except ValueError:
                output = body.decode("utf-8", "replace")  # Lambda passes any bytes through
        self._answer(job, output, None)

    def post_error(self, request_id: str, body: bytes, error_type: str | None) -> None:
        job = self._take(request_id)
        self._answer(job, None, _error_from(body, error_type, "Function.Error"))

    def post_init_error(self, body: bytes, error_type: str | None) -> None:
        with self._cond:
            if self._phase != "starting":
                raise ApiRefusal(
                    403, "InvalidStateTransition", "init/error is only allowed before /next"
                )
            error = _error_from(body, error_type, INIT_ERROR)
            self._fail_init(error)

    # -- internals (the lock is held where noted) ---------------------------------------------------

    def _spawn(self) -> None:  # lock held
        try:
            self._bootstrap = self._take_prestarted() or RuntimeClient(
                self._argv, self._env, self._spec.code_dir, self._spec.tmp_dir
            )
        except OSError as exc:
            self._bootstrap = None
            self._phase = "none"
            self._pending_error = error_object(
                INIT_ERROR, f"cannot start the bootstrap {self._argv[0]}: {exc}"
            )
            self._fail_queue()
            return
        self._phase = "starting"
        self._current = None
        self._answered = None
        reaper = threading.Thread(
            target=self._reap, args=(self._bootstrap,), name="nova-bootstrap", daemon=True
        )
        reaper.start()
        self._threads = [thread for thread in self._threads if thread.is_alive()] + [reaper]

    def _take_prestarted(self) -> RuntimeClient | None:  # lock held
        client, self._prestarted = self._prestarted, None
        if client is None:
            return None
        try:
            client.specialise(self._env, self._spec.code_dir)
        except OSError:  # it died while it waited: a new one starts instead
            client.kill()
            client.process.wait()
            client.close()
            return None
        return client

    def _fail_init(self, error: dict[str, Any]) -> None:  # lock held
        """Init failed: the waiting invocation, or else the next one, gets ``error``."""
        self._phase = "none"
        # Detached at once, as the watchdog does: until its reaper ran, the next invocation
        # would otherwise queue for a bootstrap that is already dead and wait out its timeout.
        bootstrap, self._bootstrap = self._bootstrap, None
        if bootstrap is not None:
            bootstrap.kill()
        self._pending_error = error
        self._fail_queue()
        self._cond.notify_all()

    def _fail_queue(self) -> None:  # lock held
        if self._queue and self._pending_error is not None:
            job = self._queue.popleft()
            error, self._pending_error = self._pending_error, None
            self._channel.result(job, None, error)

    def _take(self, request_id: str) -> Invocation:
        with self._cond:
            job = self._current
            if job is not None and str(job.request_id) == request_id:
                self._current, self._phase, self._answered = None, "between", request_id
                self._cond.notify_all()
                return job
            if request_id == self._answered or job is None:
                raise ApiRefusal(
                    403,
                    "InvalidStateTransition",
                    f"invocation {request_id} is not waiting for an answer",
                )
            raise ApiRefusal(400, "InvalidRequestID", f"unknown request id {request_id}")

    def _answer(self, job: Invocation, output: Any, error: dict[str, Any] | None) -> None:
        bootstrap = self._bootstrap
        stdout, stderr = bootstrap.output_since_mark() if bootstrap else ("", "")
        self._channel.result(job, output, error, stdout, stderr)

    def _reap(self, bootstrap: RuntimeClient) -> None:
        """Wait for a bootstrap to end and answer for whatever it left open."""
        status = describe_exit(bootstrap.process.wait())
        bootstrap.kill()  # what it spawned goes with it
        stdout, stderr = bootstrap.output_since_mark()
        job = None
        with self._cond:
            if self._bootstrap is bootstrap:
                self._bootstrap = None
                if self._phase == "starting" and not self._stopping:
                    message = f"the bootstrap {status} before asking for an event"
                    self._fail_init(error_object(INIT_ERROR, message + _tail(stderr)))
                elif self._current is not None:
                    job, self._current = self._current, None
                self._phase = "none"
                if self._queue and not self._stopping:
                    self._spawn()  # invocations queued behind the one it was running
                self._cond.notify_all()
        bootstrap.close()
        if job is not None:
            message = f"the bootstrap {status} during the invocation" + _tail(stderr)
            self._channel.failure(job, ErrorType.EXIT, message, stdout, stderr)

    def _watchdog(self) -> None:
        """Time out the invocation the bootstrap holds or that waits for it; kill the bootstrap."""
        while True:
            expired: list[Invocation] = []
            with self._cond:
                if self._stopping:
                    return
                now_ms = time.time() * 1000
                earliest = math.inf
                for job in [*self._queue, *([self._current] if self._current else [])]:
                    if job.deadline_ms <= now_ms:
                        expired.append(job)
                    else:
                        earliest = min(earliest, job.deadline_ms)
                if expired:
                    waiting = self._phase == "starting"
                    self._queue = deque(job for job in self._queue if job not in expired)
                    if self._current in expired:
                        self._current = None
                    # Detached first, so its reaper neither answers for it nor counts its
                    # death as an init failure: the next invocation starts a fresh bootstrap.
                    bootstrap, self._bootstrap, self._phase = self._bootstrap, None, "none"
                    if bootstrap is not None:
                        bootstrap.kill()
                    self._cond.notify_all()
                else:
                    wait_s = None if earliest == math.inf else (earliest - now_ms) / 1000
                    self._cond.wait(min(wait_s, _POLL_S) if wait_s is not None else _POLL_S)
                    continue
            for job in expired:
                if waiting:
                    message = (
                        f"the bootstrap did not ask for an event (GET /2018-06-01/runtime/"
                        f"invocation/next) within the timeout of {self._spec.timeout_s:g}s; "
                        "it was stopped"
                    )
                else:
                    message = (
                        f"the function did not finish within its timeout of "
                        f"{self._spec.timeout_s:g}s; its bootstrap was stopped"
                    )
                self._channel.failure(job, ErrorType.TIMEOUT, message)


def _event_body(job: Invocation) -> bytes:
    return json.dumps(job.event, ensure_ascii=False, separators=(",", ":")).encode()


def _event_headers(job: Invocation, spec: InitSpec) -> dict[str, str]:
    headers = {
        "Lambda-Runtime-Aws-Request-Id": str(job.request_id),
        "Lambda-Runtime-Deadline-Ms": str(int(job.deadline_ms)),
        "Lambda-Runtime-Invoked-Function-Arn": function_arn(spec.function_name),
    }
    if job.trace_parent:
        # Lambda sends the X-Ray form here; its runtime clients set _X_AMZN_TRACE_ID from it.
        amzn = amzn_trace_id(job.trace_parent)
        headers["Lambda-Runtime-Trace-Id"] = job.trace_parent if amzn is None else amzn
    for field, header in (
        ("client_context", "Lambda-Runtime-Client-Context"),
        ("cognito_identity", "Lambda-Runtime-Cognito-Identity"),
    ):
        value = job.message.get(field)
        if isinstance(value, str) and value:
            headers[header] = value
    return headers


def _error_from(body: bytes, header_type: str | None, default_type: str) -> dict[str, Any]:
    """``{errorMessage, errorType, stackTrace}`` (any of them missing) as Nova's error object."""
    try:
        document = json.loads(body) if body.strip() else {}
    except ValueError:
        document = {"errorMessage": body.decode("utf-8", "replace")}
    if not isinstance(document, dict):
        document = {"errorMessage": json.dumps(document)}
    kind = document.get("errorType") or header_type or default_type
    stack = document.get("stackTrace") or []
    if isinstance(stack, str):
        stack = stack.splitlines()
    lines = [str(line) for line in stack] if isinstance(stack, list) else [str(stack)]
    return error_object(str(kind), str(document.get("errorMessage", "")), lines)


def _size(fd: int) -> int:
    try:
        return os.fstat(fd).st_size
    except OSError:
        return 0


def _since(fd: int, mark: int) -> str:
    size = _size(fd)
    keep = min(size - mark, CAPTURE_LIMIT)
    if keep <= 0:
        return ""
    try:
        return tail_text(os.pread(fd, keep, size - keep), size - mark)
    except OSError as exc:
        return f"[nova: capture unreadable: {exc}]"


def _tail(stderr: str) -> str:
    tail = last_lines(stderr)
    return f"; its stderr ends with:\n{tail}" if tail else ""
