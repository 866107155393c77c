"""Invocation spans (OpenTelemetry): one per invocation, continuing the caller's W3C trace.

    invoke <function>            the whole call, as the daemon saw it
    ├── acquire                  finding the function and a slot on an instance
    │   └── queue                waiting for one (only when none was free)
    │       ├── sandbox          a cold or snapshot start's phases, laid back from the moment
    │       ├── runtime          the instance became ready
    │       └── init
    └── execute                  the Exec round trip; the function's NOVA_TRACE_PARENT names it

A span the function starts under NOVA_TRACE_PARENT joins the same trace. Spans are exported by a
batch processor on its own thread (OTLP over HTTP to ``tracing.otlp_endpoint``). Sampling is by
trace id at ``tracing.sampling_ratio`` unless the caller's traceparent says it sampled its span
(then Nova's are sampled too, and when it says it did not, Nova's are not). An invocation not
sampled costs a comparison or two and makes no span objects.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from nova.core.models import StartKind, StartPhases

_PROPAGATOR = TraceContextTextMapPropagator()


def tracer_provider(
    exporter: SpanExporter, sampling_ratio: float, service_name: str
) -> TracerProvider:
    """A provider of Nova's own (never the global one, which FastAPI or a library may set)."""
    provider = TracerProvider(
        sampler=ParentBased(TraceIdRatioBased(sampling_ratio)),
        resource=Resource.create({"service.name": service_name}),
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


class InvocationTracer:
    def __init__(self, provider: TracerProvider, sampling_ratio: float) -> None:
        self._provider = provider
        self._tracer = provider.get_tracer("nova.executor")
        self._never_sampled = sampling_ratio == 0.0

    def begin(
        self, function: str, request_id: str, trace_parent: str | None, trace_state: str | None
    ) -> InvocationSpan | None:
        """The invocation's span, started now; None when it is not sampled."""
        if trace_parent is None:
            if self._never_sampled:
                return None
            context = None
        elif _unsampled(trace_parent):
            return None  # a caller that did not sample its span: neither does Nova (ParentBased)
        else:
            carrier = {"traceparent": trace_parent}
            if trace_state is not None:
                carrier["tracestate"] = trace_state
            context = _PROPAGATOR.extract(carrier)
        root = self._tracer.start_span(
            f"invoke {function}",
            context=context,
            kind=SpanKind.SERVER,
            attributes={"faas.invoked_name": function, "faas.invocation_id": request_id},
        )
        if not root.is_recording():
            return None
        return InvocationSpan(self._tracer, root, time.time_ns())

    def shutdown(self) -> None:
        """Export what is pending and stop the exporter's thread."""
        self._provider.shutdown()


def _unsampled(trace_parent: str) -> bool:
    """Whether a well-formed traceparent's sampled flag is off (read without parsing the rest:
    the propagator's parse costs more than everything else an unsampled call does)."""
    if len(trace_parent) != 55 or trace_parent[52] != "-":
        return False
    try:
        return int(trace_parent[53:], 16) & 1 == 0
    except ValueError:
        return False


class InvocationSpan:
    """The spans of one sampled invocation; the executor reports its steps as they happen."""

    __slots__ = ("_execute", "_root", "_started_ns", "_tracer")

    def __init__(self, tracer: trace.Tracer, root: Span, started_ns: int) -> None:
        self._tracer = tracer
        self._root = root
        self._started_ns = started_ns
        self._execute: Span | None = None

    @property
    def trace_id(self) -> str:
        return f"{self._root.get_span_context().trace_id:032x}"

    def acquired(
        self,
        version: str,
        waited_since_ns: int | None,
        start: StartKind,
        phases: StartPhases | None,
        ready_ago_s: float,
    ) -> None:
        """The slot is taken: ``waited_since_ns`` when the call had to wait for it, the start's
        ``phases`` when it paid for one (the instance became ready ``ready_ago_s`` ago)."""
        now = time.time_ns()
        self._root.set_attributes(
            {
                "nova.version": version,
                "nova.start": start.value,
                "faas.coldstart": phases is not None,
            }
        )
        under_root = trace.set_span_in_context(self._root)
        acquire = self._tracer.start_span("acquire", under_root, start_time=self._started_ns)
        if waited_since_ns is not None:
            under_acquire = trace.set_span_in_context(acquire)
            queue = self._tracer.start_span("queue", under_acquire, start_time=waited_since_ns)
            if phases is not None:
                self._phase_spans(queue, phases, now - int(ready_ago_s * 1e9))
            queue.end(now)
        acquire.end(now)

    def _phase_spans(self, parent: Span, phases: StartPhases, ready_ns: int) -> None:
        """The start's phases as spans ending at ``ready_ns``, each after the one before it."""
        measured: Sequence[tuple[str, float | None]] = (
            ("sandbox", phases.sandbox_ms),
            ("code", phases.code_ms),
            ("runtime", phases.runtime_ms),
            ("init", phases.init_ms),
        )
        taken = [(name, int(ms * 1e6)) for name, ms in measured if ms is not None]
        begin = ready_ns - sum(duration for _, duration in taken)
        under_parent = trace.set_span_in_context(parent)
        for name, duration in taken:
            span = self._tracer.start_span(name, under_parent, start_time=begin)
            begin += duration
            span.end(begin)

    def executing(self) -> str:
        """Start the execute span; its W3C traceparent, for the function."""
        self._execute = span = self._tracer.start_span(
            "execute", trace.set_span_in_context(self._root)
        )
        context = span.get_span_context()
        return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"

    def finish(self, error_type: str | None, duration_ms: float) -> None:
        execute = self._execute
        if execute is not None:
            execute.set_attribute("nova.duration_ms", duration_ms)
            execute.end()
        if error_type is not None:
            self._root.set_attribute("error.type", error_type)
            self._root.set_status(Status(StatusCode.ERROR, error_type))
        self._root.end()

    def fail(self, error: BaseException) -> None:
        """The invocation did not run (not found, throttled, shut down, a bug)."""
        if self._execute is not None:
            self._execute.end()
        code = getattr(error, "code", type(error).__name__)
        self._root.set_attribute("error.type", str(code))
        self._root.set_status(Status(StatusCode.ERROR, str(code)))
        self._root.end()
