"""The agent's frame loop: read a frame, dispatch by type, answer every request exactly once.

One thread reads the host connection. Exec goes straight to the Runner (which answers from its
own threads); Init, Ping, Drain, Reload and Stop are handled here, in order, so a Drain or
Reload never overlaps the frames sent before it. Malformed or unknown messages get an
``ok: false`` reply and the loop carries on; only a broken stream (an oversized or truncated
frame) ends it.

In direct mode (direct.py) the worker reads the connection instead and the loop only sees the
frames it hands back; frames are read unbuffered, so nothing is read past a frame boundary.
"""

from __future__ import annotations

import os
import select
import time
from collections.abc import Callable

import nova
from nova.agent.channel import Channel
from nova.agent.diagnostics import report
from nova.agent.direct import DirectLane, direct_mode_fits
from nova.agent.environment import function_environment
from nova.agent.errors import AgentError, ErrorType
from nova.agent.forked_worker import compile_ahead
from nova.agent.invocation import parse_exec
from nova.agent.launch import BOOTSTRAPS
from nova.agent.protocol import (
    PROTOCOL_VERSION,
    MessageTooLarge,
    MsgType,
    ProtocolError,
    decode_body,
    read_frame,
)
from nova.agent.resume import resume_guest
from nova.agent.runner import make_runner
from nova.agent.spec import InitSpec, parse_init

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:  # typing is only needed by the type checker; importing it costs start-up time
    from typing import Any

    from nova.agent.prestart import Prestarted, PrestartedWorker
    from nova.agent.provided import RuntimeClient
    from nova.agent.runner import Runner

EXIT_OK = 0
EXIT_PROTOCOL = 3  # the host sent something that is not a frame stream; the agent gave up
EXIT_WORKER_LOST = 4  # the direct-mode worker died inside a frame, or cannot be restarted
_DRAIN_SLACK_S = 5.0  # Drain waits for running invocations up to their timeout plus this


class Agent:
    def __init__(self, fd: int, max_message_bytes: int) -> None:
        self._fd = fd
        self._max = max_message_bytes
        self._channel = Channel(fd, max_message_bytes)
        self._spec: InitSpec | None = None
        self._env: dict[str, str] = {}
        self._runner: Runner | None = None
        self._lane: DirectLane | None = None
        self._drained = False  # between Drain and Reload: no worker runs, Exec is refused
        self._prestarted: Prestarted | None = None  # a runtime started before Init (Prestart)
        self._used_prestarted = False
        self._handlers: dict[int, Callable[[dict[str, Any]], bool]] = {
            MsgType.INIT: self._init,
            MsgType.PING: self._ping,
            MsgType.DRAIN: self._drain,
            MsgType.RELOAD: self._reload,
            MsgType.STOP: self._stop,
            MsgType.RESUME: self._resume,
            MsgType.PRESTART: self._prestart,
        }

    def serve(self) -> int:
        """Serve until Stop or EOF (0) or a broken stream (EXIT_PROTOCOL)."""
        if not select.select([self._fd], [], [], 0)[0]:
            # Nothing to read yet (a standby instance, started ahead of need): use the idle
            # time to compile the Python bootstrap that forked workers will run.
            compile_ahead(BOOTSTRAPS["python"])
        try:
            return self._loop(FrameSource(self._fd))
        finally:
            self._stop_runner()

    def _loop(self, source: FrameSource) -> int:
        channel = self._channel
        while True:
            if self._lane is not None and not self._drained:
                handed_back = self._lane.serve()
                if handed_back is None:
                    return EXIT_WORKER_LOST
                source.push_back(handed_back)
            try:
                body = read_frame(source, self._max)
            except MessageTooLarge as exc:
                # The stream cannot be resynchronised without reading the oversized body.
                channel.refuse(None, AgentError(ErrorType.MESSAGE_TOO_LARGE, str(exc)))
                report(f"closing the connection: {exc}")
                return EXIT_PROTOCOL
            except (ProtocolError, OSError) as exc:
                report(f"closing the connection: {exc}")
                return EXIT_PROTOCOL
            if body is None:
                return EXIT_OK
            try:
                message = decode_body(body)
            except ProtocolError as exc:
                channel.refuse(None, AgentError(ErrorType.INVALID_MESSAGE, str(exc)))
                continue
            kind = message["type"]
            if kind == MsgType.EXEC:
                self._exec(message, body)
                continue
            handler = self._handlers.get(kind)
            if handler is None:
                error = AgentError(ErrorType.UNKNOWN_MESSAGE, f"unknown message type {kind}")
                channel.refuse(message.get("id"), error)
                continue
            try:
                keep_serving = handler(message)
            except AgentError as exc:
                channel.refuse(message.get("id"), exc)
                continue
            if not keep_serving:
                return EXIT_OK

    def _exec(self, message: dict[str, Any], body: bytes) -> None:
        runner, spec = self._runner, self._spec
        if self._drained:
            error = AgentError(ErrorType.DRAINED, "the workers are stopped for a reload")
            self._channel.refuse(message.get("id"), error)
            return
        if self._lane is not None and spec is not None:
            self._refuse_handed_back_exec(message, body, spec)
            return
        if runner is None or spec is None:
            kind = ErrorType.NOT_INITIALIZED if spec is None else ErrorType.INIT_FAILED
            reason = "send Init first" if spec is None else "its workers failed to start"
            error = AgentError(kind, f"the agent cannot run Exec: {reason}")
            self._channel.refuse(message.get("id"), error)
            return
        try:
            job = parse_exec(message, body, spec.timeout_s)
        except AgentError as exc:
            self._channel.refuse(message.get("id"), exc)
            return
        runner.submit(job)

    def _refuse_handed_back_exec(
        self, message: dict[str, Any], body: bytes, spec: InitSpec
    ) -> None:
        """A direct-mode worker serves every Exec it can; what it hands back is refused."""
        try:
            parse_exec(message, body, spec.timeout_s)
        except AgentError as exc:
            self._channel.refuse(message.get("id"), exc)
            return
        error = AgentError(ErrorType.INVALID_MESSAGE, "Exec: the id is too long (over 1000 bytes)")
        self._channel.refuse(message.get("id"), error)

    def _init(self, message: dict[str, Any]) -> bool:
        started = time.perf_counter()
        self.initialise(message)
        self._channel.reply(
            message.get("id"),
            protocol=PROTOCOL_VERSION,
            agent_version=nova.__version__,
            pid=os.getpid(),
            init_ms=round((time.perf_counter() - started) * 1000, 3),
            direct=self._lane is not None,
            prestarted=self._used_prestarted,
        )
        return True

    def _prestart(self, message: dict[str, Any]) -> bool:
        from nova.agent.prestart import prestart

        if self._spec is not None or self._prestarted is not None:
            raise AgentError(ErrorType.ALREADY_INITIALIZED, "Prestart comes once, before Init")
        started = time.perf_counter()
        self._prestarted = prestart(message, self._fd, self._max)
        startup_ms = round((time.perf_counter() - started) * 1000, 3)
        pid = self._prestarted.pid
        self._channel.reply(message.get("id"), startup_ms=startup_ms, worker_pid=pid)
        return True

    def initialise(self, message: dict[str, Any]) -> None:
        """Run Init without answering it: an instance forked from a function template
        (template.py) arrives with Init done, as the template's copy of it."""
        if self._spec is not None:
            raise AgentError(ErrorType.ALREADY_INITIALIZED, "Init was already accepted")
        spec = parse_init(message, os.environ)
        env = function_environment(spec, os.environ)
        worker, client = self._take_prestarted(spec)
        if direct_mode_fits(spec):
            lane = DirectLane(spec, env, self._channel, self._fd, worker)
            try:
                lane.start()
            except AgentError:
                lane.stop()
                raise
            self._lane = lane
            self._used_prestarted = lane.used_prestarted
        else:
            runner = make_runner(spec, env, self._channel, client)
            runner.start()
            self._runner = runner
            self._used_prestarted = client is not None and client.specialised
        self._spec, self._env = spec, env

    def _take_prestarted(
        self, spec: InitSpec
    ) -> tuple[PrestartedWorker | None, RuntimeClient | None]:
        """The pre-started runtime, if ``spec``'s start would have started exactly it (as a
        direct-mode worker, or a Runtime API client); any other is discarded."""
        prestarted, self._prestarted = self._prestarted, None
        if prestarted is None:
            return None, None
        from nova.agent.prestart import PrestartedWorker

        if not prestarted.fits(spec):
            prestarted.discard()
            return None, None
        if isinstance(prestarted, PrestartedWorker):
            return prestarted, None
        return None, prestarted.client

    def _ping(self, message: dict[str, Any]) -> bool:
        self._channel.reply(message.get("id"))
        return True

    def _drain(self, message: dict[str, Any]) -> bool:
        spec = self._require_spec("Drain")
        if not self._drained:
            self._stop_workers(spec)
            self._drained = True
        self._channel.reply(message.get("id"))
        return True

    def _reload(self, message: dict[str, Any]) -> bool:
        spec = self._require_spec("Reload")
        if not self._drained:
            self._stop_workers(spec)
            self._drained = True
        # Fresh workers import the code as it is now. A Python worker forked from the agent
        # starts without any of the function's modules: the agent never imports them.
        if self._lane is not None:
            self._lane.start()
        else:
            self._runner = self._start_runner(spec, self._env)
        self._drained = False  # only now: workers that failed to start leave Exec refused
        self._channel.reply(message.get("id"), code_hash=message.get("code_hash"))
        return True

    def _resume(self, message: dict[str, Any]) -> bool:
        """A restored VM snapshot: every restore shares the snapshot's clock, kernel RNG and
        workers' RNG state, so take fresh ones from the host before anything runs."""
        resume_guest(message)
        if self._runner is not None and self._spec is not None:
            self._runner.stop()  # fresh workers draw fresh seeds from the reseeded kernel
            self._runner = self._start_runner(self._spec, self._env)
        # A direct-mode worker has exited already (it handed this frame over); the lane
        # starts a new one when serving resumes.
        self._channel.reply(message.get("id"))
        return True

    def _require_spec(self, what: str) -> InitSpec:
        if self._spec is None:
            raise AgentError(ErrorType.NOT_INITIALIZED, f"send Init before {what}")
        return self._spec

    def _stop_workers(self, spec: InitSpec) -> None:
        """Let the invocations sent so far finish on the old code, then stop every worker."""
        runner, self._runner = self._runner, None
        if runner is not None:
            # The frame loop reads nothing new meanwhile, so nothing else starts.
            runner.drain(spec.timeout_s + _DRAIN_SLACK_S)
            runner.stop()
        # A direct-mode worker has exited already: it handed the Drain or Reload frame over
        # after serving every frame sent before it, in order.

    def _stop(self, message: dict[str, Any]) -> bool:
        self._stop_runner()
        self._channel.reply(message.get("id"))
        return False

    def _start_runner(self, spec: InitSpec, env: dict[str, str]) -> Runner:
        runner = make_runner(spec, env, self._channel)
        runner.start()
        return runner

    def _stop_runner(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.stop()
        lane, self._lane = self._lane, None
        if lane is not None:
            lane.stop()
        prestarted, self._prestarted = self._prestarted, None
        if prestarted is not None:
            prestarted.discard()


class FrameSource:
    """The host connection, read unbuffered, behind bytes a direct-mode worker handed back."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._pending = b""

    def push_back(self, data: bytes) -> None:
        self._pending = data + self._pending

    def read(self, size: int) -> bytes:
        if not self._pending:
            return os.read(self._fd, size)
        chunk, self._pending = self._pending[:size], self._pending[size:]
        return chunk
