"""The invoke path: resolve the pool, take a slot, send Exec, wait under a deadline, classify.

Hot-path rules: the event bytes from the HTTP body are spliced into the Exec frame unparsed;
nothing is looked up in the store once a function's pool exists; the log record is queued, never
awaited - unless the log buffer is full and the spool refuses records, when the call waits for
room before it answers.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from nova.agent.protocol import exec_body
from nova.core import ids
from nova.core.counters import DaemonCounters
from nova.core.errors import ShuttingDown, TooManyRequests
from nova.core.models import InvocationError, InvocationLog, StartKind, StartPhases
from nova.core.quotas import ConcurrencyQuotaExceeded
from nova.core.secrets import scrub
from nova.executor.drain import InflightTracker
from nova.executor.env_concurrency import EnvironmentConcurrency, RunningIn
from nova.executor.result import InvocationResult
from nova.observability.invocation_logs import InvocationLogBatcher
from nova.observability.log_context import CURRENT, InvocationContext, trace_id_of
from nova.observability.metrics import InvocationMetrics, Outcome
from nova.observability.tracing import InvocationTracer
from nova.pool.connection import AgentConnectionLost
from nova.pool.function_pool import FunctionPool
from nova.pool.instance import PooledInstance

logger = logging.getLogger(__name__)


class Targets(Protocol):
    """The executor's one dependency for finding where an invocation runs."""

    async def resolve(
        self, name: str, qualifier: str | None = None, routing_key: str | None = None
    ) -> FunctionPool:
        """The pool of the one (function, version) ``name[:qualifier]`` names now; an alias
        picks a version by its weights (by ``routing_key`` when given, so it sticks)."""
        ...


class Executor:
    def __init__(
        self,
        targets: Targets,
        log_batcher: InvocationLogBatcher,
        timeout_grace_s: float,
        counters: DaemonCounters,
        metrics: InvocationMetrics | None = None,
        tracer: InvocationTracer | None = None,
        environments: EnvironmentConcurrency | None = None,
    ) -> None:
        self._targets = targets
        self._logs = log_batcher
        self._grace_s = timeout_grace_s
        self.inflight = InflightTracker()
        self.counters = counters
        self._metrics = metrics  # None: metrics.enabled is off
        self._tracer = tracer  # None: tracing.enabled is off
        self._environments = environments  # None: no environment has a concurrency quota

    async def invoke(
        self,
        name: str,
        event: bytes,
        *,
        qualifier: str | None = None,
        routing_key: str | None = None,
        request_id: str | None = None,
        trace_parent: str | None = None,
        trace_state: str | None = None,
        client_context: str | None = None,
    ) -> InvocationResult:
        """Run one invocation. ``event`` must already be valid JSON (the API checks it).
        ``trace_parent``/``trace_state``: the caller's W3C trace context, which the
        invocation's spans continue (when tracing is on) and the function sees.
        ``client_context`` (a JSON text, Lambda's ClientContext) reaches the function's
        context."""
        inflight = self.inflight
        if inflight.closing:
            raise ShuttingDown()
        inflight.begin()
        started = time.perf_counter()
        request_id = request_id or ids.request_id()
        tracer = self._tracer
        span = None if tracer is None else tracer.begin(name, request_id, trace_parent, trace_state)
        logged_as = None
        counted = None  # the environment's running invocations, this one among them
        try:
            pool = await self._targets.resolve(name, qualifier, routing_key)
            if self._environments is not None:  # after resolving: only real functions count
                counted = await self._count_in_environment(self._environments, pool)
            trace_id = trace_id_of(trace_parent) if span is None else span.trace_id
            logged_as = CURRENT.set(
                InvocationContext(request_id, name, pool.deployment.version, trace_id)
            )
            # A free slot is taken without a coroutine; only a request that must queue awaits.
            instance, cold, waited_since_ns = pool.try_acquire(), False, None
            if instance is None:
                waited_since_ns = time.time_ns()
                instance, cold = await self._wait_for_instance(pool)
            deployment = pool.deployment  # what this call runs, even if an update lands meanwhile
            start, phases = _how_it_started(instance, cold)
            if span is not None:
                ready_ago_s = time.monotonic() - instance.ready_at
                span.acquired(deployment.version, waited_since_ns, start, phases, ready_ago_s)
                trace_parent = span.executing()  # the function's spans are the execute span's
            timeout_s = deployment.config.timeout_s
            try:
                connection = instance.connection
                frame_id = connection.next_id()
                deadline_ms = int((time.time() + timeout_s) * 1000)
                body = exec_body(
                    frame_id, request_id, deadline_ms, trace_parent, event, client_context
                )
                sent = time.perf_counter()
                try:
                    reply = await connection.request_raw(frame_id, body, timeout_s + self._grace_s)
                except (TimeoutError, AgentConnectionLost) as exc:
                    failure = self._failure(pool, instance, exc, timeout_s)
                    elapsed_ms = (time.perf_counter() - sent) * 1000
                    version = deployment.version
                    result = InvocationResult(request_id, None, failure, elapsed_ms, cold, version)
                else:
                    result = self._result(
                        pool, instance, reply, request_id, cold, deployment.version
                    )
            finally:
                pool.release(instance, broken=instance.connection.closed)
            result.total_ms = round((time.perf_counter() - started) * 1000, 3)
            result.start, result.phases = start, phases
            if span is not None:
                span.finish(result.error.type if result.error else None, result.duration_ms)
                span = None
            if self._record(pool, result, event, qualifier):
                # The log buffer is full and the spool refuses records: the last resort
                # against losing them is answering no faster than they can be kept.
                await self._logs.room()
            return result
        except BaseException as exc:
            if span is not None:
                span.fail(exc)
            raise
        finally:
            if counted is not None:
                counted.release()
            if logged_as is not None:
                CURRENT.reset(logged_as)
            inflight.end()

    async def _count_in_environment(
        self, environments: EnvironmentConcurrency, pool: FunctionPool
    ) -> RunningIn:
        """One more invocation running in the function's environment (a 429 over its quota)."""
        full_name = pool.deployment.name
        try:
            return environments.enter(full_name) or await environments.enter_first(full_name)
        except ConcurrencyQuotaExceeded:
            if self._metrics is not None:
                self._metrics.throttled(full_name, "environment")
            raise

    async def _wait_for_instance(self, pool: FunctionPool) -> tuple[PooledInstance, bool]:
        """``pool.acquire()`` for a request that found no free slot, with its wait measured."""
        metrics = self._metrics
        if metrics is None:
            return await pool.acquire()
        began = time.perf_counter()
        try:
            acquired = await pool.acquire()
        except TooManyRequests:
            metrics.throttled(pool.deployment.name, "concurrency")
            raise
        metrics.pool_wait(pool.deployment.name, time.perf_counter() - began)
        return acquired

    async def version_for(self, name: str, qualifier: str | None = None) -> str:
        """The version ``name[:qualifier]`` would run now (FunctionNotFound & co. otherwise)."""
        pool = await self._targets.resolve(name, qualifier)
        return pool.deployment.version

    def _failure(
        self,
        pool: FunctionPool,
        instance: PooledInstance,
        exc: TimeoutError | AgentConnectionLost,
        timeout_s: float,
    ) -> InvocationError:
        if isinstance(exc, AgentConnectionLost):
            return self._lost_instance_error(instance, str(exc))
        self._timed_out(pool, instance)
        return InvocationError(
            "Function.Timeout",
            f"the function did not finish within its timeout of {timeout_s:g}s; it was stopped",
        )

    def _result(
        self,
        pool: FunctionPool,
        instance: PooledInstance,
        reply: dict[str, Any],
        request_id: str,
        cold: bool,
        version: str,
    ) -> InvocationResult:
        error = _reply_error(reply)
        output, output_json = None, b"null"
        if error is None:
            output = reply.get("output")
            try:
                output_json = orjson.dumps(output)  # once: the log's size and the response use it
            except orjson.JSONEncodeError as exc:
                output, error = None, _unserialisable(exc)
        elif error.type == "Runtime.ExitError":
            error = self._oom_or(instance, error)
        elif error.type == "Function.Timeout":
            self._timed_out(pool, instance)  # the agent stopped the handler, not its children
        stdout, stderr = str(reply.get("stdout", "")), str(reply.get("stderr", ""))
        if instance.start_notice is not None:  # once, in its first invocation's logs
            stderr, instance.start_notice = instance.start_notice + stderr, None
        if instance.secret_values:  # what is logged and shown never holds a secret's value
            stdout, stderr, error = _scrubbed(instance.secret_values, stdout, stderr, error)
        return InvocationResult(
            request_id=request_id,
            output=output,
            error=error,
            duration_ms=float(reply.get("duration_ms", 0.0)),
            cold_start=cold,
            version=version,
            stdout=stdout,
            stderr=stderr,
            output_json=output_json,
        )

    def _timed_out(self, pool: FunctionPool, instance: PooledInstance) -> None:
        """A timed-out handler may leave processes behind: its instance is replaced."""
        self.counters.timeouts += 1
        pool.discard(instance)

    def _lost_instance_error(self, instance: PooledInstance, reason: str) -> InvocationError:
        error = InvocationError(
            "Runtime.ExitError", f"the instance stopped during the invocation ({reason})"
        )
        return self._oom_or(instance, error)

    @staticmethod
    def _oom_or(instance: PooledInstance, error: InvocationError) -> InvocationError:
        kills = instance.sandbox.oom_kills()
        if kills > instance.oom_kills_seen:
            instance.oom_kills_seen = kills
            return InvocationError(
                "Function.OutOfMemory",
                "the function used more memory than its memory_mb allows and was killed; raise memory_mb",
            )
        return error

    def _record(
        self, pool: FunctionPool, result: InvocationResult, event: bytes, qualifier: str | None
    ) -> bool:
        """Count the invocation and queue its log record; True when the caller must wait for
        room in the log buffer."""
        counters = self.counters
        counters.invocations += 1
        counters.errors += result.error is not None
        counters.waited_for_start += result.cold_start
        phases = result.phases
        if self._metrics is not None:
            _measure(self._metrics, pool.deployment.name, result)
        return self._logs.submit(
            InvocationLog(
                id=result.request_id,
                function_id=pool.deployment.function_id,
                function_name=pool.deployment.name,
                runtime=pool.deployment.config.runtime,
                version=result.version,
                qualifier=qualifier or "",
                duration_ms=result.duration_ms,
                total_ms=result.total_ms,
                cold_start=result.cold_start,
                start=result.start.value,
                sandbox_ms=phases.sandbox_ms if phases else None,
                code_ms=phases.code_ms if phases else None,
                runtime_ms=phases.runtime_ms if phases else None,
                init_ms=phases.init_ms if phases else None,
                success=result.error is None,
                error_type=result.error.type if result.error else None,
                error_message=result.error.message if result.error else None,
                input_size=len(event),
                output_size=len(result.output_json) if result.error is None else 0,
                stdout=result.stdout,
                stderr=result.stderr,
                created_at=datetime.now(UTC),
            )
        )


def _measure(metrics: InvocationMetrics, function: str, result: InvocationResult) -> None:
    error, start = result.error, result.start.value
    if error is None:
        outcome = Outcome.SUCCESS
    else:
        outcome = Outcome.TIMEOUT if error.type == "Function.Timeout" else Outcome.ERROR
        metrics.error(function, error.type)
    metrics.invocation(function, result.version, start, outcome, result.total_ms / 1000)
    if result.phases is not None:
        metrics.cold_start(function, start, result.phases, result.duration_ms)


_KEPT_WHEN_COLD = (StartKind.SNAPSHOT, StartKind.PRESTARTED)  # else a cold start is "cold"


def _how_it_started(instance: PooledInstance, cold: bool) -> tuple[StartKind, StartPhases | None]:
    """The invocation's start kind, and the start's phases when the invocation paid for them."""
    kind = instance.start_kind
    if cold:
        return (kind if kind in _KEPT_WHEN_COLD else StartKind.COLD), instance.start_phases
    if kind is StartKind.PREWARMED and instance.invocations == 1:
        return StartKind.PREWARMED, None
    return StartKind.WARM, None


def _scrubbed(
    values: tuple[str, ...], stdout: str, stderr: str, error: InvocationError | None
) -> tuple[str, str, InvocationError | None]:
    """The captured output and the error with the instance's secret values replaced. The
    return value is left alone: it is the function's answer to its caller, and it is not
    kept in the invocation record (only its size is)."""
    if error is not None:
        error = InvocationError(
            error.type, scrub(error.message, values), [scrub(line, values) for line in error.stack]
        )
    return scrub(stdout, values), scrub(stderr, values), error


def _unserialisable(exc: orjson.JSONEncodeError) -> InvocationError:
    """The reply is parsed with orjson, which reads deeper nesting (1024 levels) than it
    writes (254): a result between the two is the handler's serialisation error, as the worker
    reports deeper or otherwise unserialisable ones."""
    return InvocationError("Runtime.SerializationError", f"Unable to marshal response: {exc}")


def _reply_error(reply: dict[str, Any]) -> InvocationError | None:
    raw = reply.get("error")
    if not raw and reply.get("ok", True):
        return None
    if not isinstance(raw, dict):
        return InvocationError("Runtime.Unknown", f"the agent failed the request: {raw!r}")
    stack = raw.get("stack") or []
    return InvocationError(
        str(raw.get("type", "Runtime.Unknown")),
        str(raw.get("message", "")),
        [str(line) for line in stack],
    )
