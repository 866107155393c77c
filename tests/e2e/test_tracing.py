"""Tracing against a real daemon: its spans, exported with OTLP over HTTP to a collector in this
test, continue the caller's trace, and the function sees the same trace (W3C and X-Ray forms)."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.e2e.daemon_process import DaemonProcess

CODE = """
import os

def handler(event, context):
    return [os.environ.get("NOVA_TRACE_PARENT"), os.environ.get("_X_AMZN_TRACE_ID")]
"""
# A function that starts its own span with the OpenTelemetry SDK (from its requirements.txt)
# from the context Nova hands it, and answers the span's trace id and parent span id.
USES_THE_SDK = """
import os
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
tracer = provider.get_tracer("function")

def handler(event, context):
    carrier = {"traceparent": os.environ["NOVA_TRACE_PARENT"]}
    with tracer.start_as_current_span(
        "work", context=TraceContextTextMapPropagator().extract(carrier)
    ):
        pass
    span = exporter.get_finished_spans()[-1]
    return [format(span.context.trace_id, "032x"), format(span.parent.span_id, "016x")]
"""
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


class Collector:
    """An OTLP/HTTP trace receiver: keeps every span posted to /v1/traces."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest.FromString(body)
                for resource in request.resource_spans:
                    for scope in resource.scope_spans:
                        collector.spans.extend(scope.spans)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, count: int) -> list[Span]:
        deadline = time.monotonic() + 15
        while len(self.spans) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.spans)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def collector() -> Iterator[Collector]:
    running = Collector()
    yield running
    running.close()


def traced_daemon(data_dir: Path, collector: Collector, ratio: str) -> DaemonProcess:
    env = {
        "NOVA_TRACING__ENABLED": "true",
        "NOVA_TRACING__OTLP_ENDPOINT": collector.url,
        "NOVA_TRACING__SAMPLING_RATIO": ratio,
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # export within 0.1 s rather than 5 s
    }
    return DaemonProcess(data_dir, env=env).start()


def test_the_callers_trace_continues_through_nova_into_the_function(
    tmp_path: Path, collector: Collector
) -> None:
    daemon = traced_daemon(tmp_path / "data", collector, "0")  # the caller's flag decides
    try:
        with daemon.client() as api:
            api.post(
                "/functions", json={"name": "t", "runtime": "python", "code": CODE}
            ).raise_for_status()
            headers = {
                "traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01",
                "tracestate": "vendor=abc",
            }
            seen, amzn = api.post("/functions/t/invoke", json={}, headers=headers).json()["output"]
        spans = collector.wait_for(7)  # invoke, acquire, queue, sandbox, runtime, init, execute
    finally:
        daemon.stop()
    by_name = {span.name: span for span in spans}
    assert set(by_name) >= {"invoke t", "acquire", "queue", "sandbox", "runtime", "init", "execute"}
    assert {span.trace_id.hex() for span in spans} == {CALLER_TRACE}
    root = by_name["invoke t"]
    assert root.parent_span_id.hex() == CALLER_SPAN
    assert root.trace_state == "vendor=abc"
    assert by_name["execute"].parent_span_id == root.span_id
    assert by_name["queue"].parent_span_id == by_name["acquire"].span_id
    assert by_name["init"].parent_span_id == by_name["queue"].span_id

    execute_span = by_name["execute"].span_id.hex()
    assert seen == f"00-{CALLER_TRACE}-{execute_span}-01"
    assert amzn == f"Root=1-{CALLER_TRACE[:8]}-{CALLER_TRACE[8:]};Parent={execute_span};Sampled=1"


def test_sampling_zero_exports_nothing_and_passes_the_callers_context_on(
    tmp_path: Path, collector: Collector
) -> None:
    daemon = traced_daemon(tmp_path / "data", collector, "0")
    unsampled = f"00-{CALLER_TRACE}-{CALLER_SPAN}-00"
    try:
        with daemon.client() as api:
            api.post(
                "/functions", json={"name": "t", "runtime": "python", "code": CODE}
            ).raise_for_status()
            plain = api.post("/functions/t/invoke", json={}).json()["output"]
            headers = {"traceparent": unsampled}
            passed = api.post("/functions/t/invoke", json={}, headers=headers).json()["output"]
    finally:
        daemon.stop()  # a clean stop exports what is pending
    assert collector.spans == []
    assert plain == [None, None]
    assert passed[0] == unsampled


def test_a_span_the_function_starts_with_the_sdk_joins_the_callers_trace(
    tmp_path: Path, collector: Collector
) -> None:
    daemon = traced_daemon(tmp_path / "data", collector, "0")
    files = {"handler.py": USES_THE_SDK, "requirements.txt": "opentelemetry-sdk==1.45.0\n"}
    try:
        with daemon.client() as api:
            created = api.post(
                "/functions", json={"name": "t", "runtime": "python", "files": files}
            )
            assert created.status_code == 201, created.text
            headers = {"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"}
            result = api.post("/functions/t/invoke", json={}, headers=headers).json()
        spans = collector.wait_for(7)
    finally:
        daemon.stop()
    execute = next(span for span in spans if span.name == "execute")
    assert result["output"] == [CALLER_TRACE, execute.span_id.hex()], result
