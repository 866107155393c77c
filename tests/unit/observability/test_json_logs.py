"""JSON log lines carry the invocation they were written in, and only while it runs."""

from __future__ import annotations

import json
import logging

from nova.observability.log_context import CURRENT, InvocationContext, trace_id_of
from nova.observability.logging import JsonFormatter


def line(message: str) -> dict[str, object]:
    record = logging.LogRecord("nova.test", logging.INFO, __file__, 1, message, None, None)
    parsed: dict[str, object] = json.loads(JsonFormatter().format(record))
    return parsed


def test_a_line_inside_an_invocation_names_it() -> None:
    token = CURRENT.set(
        InvocationContext("req-1", "hello", "3", "4bf92f3577b34da6a3ce929d0e0e4736")
    )
    try:
        inside = line("started")
    finally:
        CURRENT.reset(token)
    assert inside["message"] == "started"
    assert (inside["request_id"], inside["function"], inside["version"]) == ("req-1", "hello", "3")
    assert inside["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    outside = line("idle")
    assert "request_id" not in outside
    assert "function" not in outside


def test_trace_id_of_reads_only_well_formed_traceparents() -> None:
    assert trace_id_of("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01") == (
        "4bf92f3577b34da6a3ce929d0e0e4736"
    )
    assert trace_id_of("garbage") is None
    assert trace_id_of(None) is None
