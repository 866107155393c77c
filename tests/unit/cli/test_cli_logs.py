"""`nova logs`: recent entries oldest first; --follow prints each new entry once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from nova.cli.exit_codes import ExitCode

from .fakes import FakeApi, RunNova


def entry(n: int, **overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": f"req-{n}",
        "created_at": f"2025-01-02T03:04:0{n}+00:00",
        "duration_ms": 1.5,
        "total_ms": 1.75,
        "cold_start": n == 1,
        "success": True,
        "error_type": None,
        "error_message": None,
        "stdout": "",
        "stderr": "",
        "input_size": 2,
        "output_size": 4,
    }
    record.update(overrides)
    return record


def test_logs_prints_entries_oldest_first(nova: RunNova, api: FakeApi) -> None:
    newest_first = [
        entry(3, success=False, error_type="ValueError", error_message="bad input"),
        entry(2, stdout="hello\nworld\n", stderr="careful\n"),
        entry(1),
    ]
    api.on("GET", "/functions/hello/logs", {"items": newest_first, "next": None})

    result = nova("logs", "hello")

    assert result.exit_code == ExitCode.OK, result.output
    assert dict(api.last.url.params) == {"limit": "20"}
    assert result.stdout.splitlines() == [
        "2025-01-02 03:04:01  req-1  handler 1.5 ms / total 1.8 ms  cold  ok",
        "2025-01-02 03:04:02  req-2  handler 1.5 ms / total 1.8 ms  warm  ok",
        "  out | hello",
        "  out | world",
        "  err | careful",
        "2025-01-02 03:04:03  req-3  handler 1.5 ms / total 1.8 ms  warm  ValueError: bad input",
    ]


def test_logs_limit_and_json(nova: RunNova, api: FakeApi) -> None:
    page = {"items": [entry(2), entry(1)], "next": None}
    api.on("GET", "/functions/hello/logs", page)

    result = nova("--json", "logs", "hello", "--limit", "2")

    assert dict(api.last.url.params) == {"limit": "2"}
    assert json.loads(result.stdout) == page


def test_logs_of_an_idle_function_says_so(nova: RunNova, api: FakeApi) -> None:
    api.on("GET", "/functions/hello/logs", {"items": [], "next": None})

    result = nova("logs", "hello")

    assert result.exit_code == ExitCode.OK
    assert result.stdout == ""
    assert "no invocations of hello yet" in result.stderr


def sse(*entries: dict[str, Any]) -> httpx.Response:
    body = ": following\n\n" + "".join(f"data: {json.dumps(e)}\n\n" for e in entries)
    return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})


@pytest.mark.parametrize("json_output", [False, True])
def test_follow_prints_the_recent_entries_then_the_stream(
    nova: RunNova, api: FakeApi, json_output: bool
) -> None:
    e1, e2, e3, e4 = (entry(n) for n in range(1, 5))
    api.on("GET", "/functions/hello/logs", {"items": [e2, e1], "next": None})
    api.on("GET", "/invocations/stream", handler=lambda _: sse(e3, e4))

    args = ("--json",) if json_output else ()
    result = nova(*args, "logs", "hello", "--follow")

    assert result.exit_code == ExitCode.OK, result.output
    assert dict(api.last.url.params) == {"function": "hello"}
    if json_output:
        printed = [json.loads(line)["id"] for line in result.stdout.splitlines()]
    else:
        printed = [line.split()[2] for line in result.stdout.splitlines()]
    assert printed == ["req-1", "req-2", "req-3", "req-4"]
    assert "the daemon ended the stream" in result.stderr


def test_follow_filters_go_to_the_stream(nova: RunNova, api: FakeApi) -> None:
    api.on("GET", "/invocations/stream", handler=lambda _: sse(entry(7)))

    result = nova("logs", "hello", "-f", "--outcome", "error", "--version", "3", "--since", "10m")

    assert result.exit_code == ExitCode.OK, result.output
    assert api.sent() == [("GET", "/invocations/stream")]  # no recent listing: the stream's
    params = dict(api.last.url.params)
    since = datetime.fromisoformat(params.pop("since"))
    assert timedelta(minutes=9) < datetime.now(UTC) - since < timedelta(minutes=11)
    assert params == {"function": "hello", "outcome": "error", "version": "3"}
    assert "req-7" in result.stdout


def test_filters_without_follow_are_a_usage_error(nova: RunNova, api: FakeApi) -> None:
    result = nova("logs", "hello", "--outcome", "error")
    assert result.exit_code == ExitCode.USAGE
    assert "go with --follow" in result.output
    assert api.requests == []


def test_a_refused_stream_is_an_api_error(nova: RunNova, api: FakeApi) -> None:
    refusal = {"error": {"code": "Request.Invalid", "message": "outcome: bad"}}
    api.on("GET", "/invocations/stream", refusal, status=422)
    result = nova("logs", "-f", "--outcome", "timeout")
    assert result.exit_code == ExitCode.INVALID
    assert "outcome: bad" in result.stderr


def test_logs_without_a_name_shows_every_function(nova: RunNova, api: FakeApi) -> None:
    entry = {
        "id": "req-9",
        "function_name": "other",
        "created_at": "2025-01-02T03:04:05+00:00",
        "duration_ms": 2.0,
        "total_ms": 2.5,
        "cold_start": False,
        "success": True,
        "stdout": "",
        "stderr": "",
    }
    api.on("GET", "/invocations", {"items": [entry], "next": None})

    result = nova("logs", "--limit", "5")

    assert result.exit_code == ExitCode.OK, result.output
    assert api.sent() == [("GET", "/invocations")]
    assert "other  req-9" in result.stdout


def test_logs_verbose_shows_where_a_cold_start_went(nova: RunNova, api: FakeApi) -> None:
    cold = entry(1, start="cold", sandbox_ms=6.5, code_ms=None, runtime_ms=20.0, init_ms=18.25)
    cold["total_ms"] = 47.0
    api.on("GET", "/functions/hello/logs", {"items": [entry(2, start="warm"), cold], "next": None})

    result = nova("logs", "hello", "--verbose")

    assert result.exit_code == ExitCode.OK, result.output
    assert result.stdout.splitlines() == [
        "2025-01-02 03:04:01  req-1  handler 1.5 ms / total 47.0 ms  cold  ok",
        "  start | sandbox 6.5 ms · runtime 20.0 ms · init 18.2 ms · execution 1.5 ms · other 0.8 ms",
        "2025-01-02 03:04:02  req-2  handler 1.5 ms / total 1.8 ms  warm  ok",
    ]
    assert "start |" not in nova("logs", "hello").stdout  # only when asked for
