"""`nova invoke`: payloads in, output and the summary line out, function errors as exit 8."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from nova.cli.errors import TimedOut
from nova.cli.exit_codes import ExitCode
from nova.cli.render import Renderer
from nova.cli.state import DEFAULT_TIMEOUT_S
from nova.core.models import MAX_TIMEOUT_S

from .fakes import FakeApi, RunNova, function_record


def invoke_result(**overrides: Any) -> dict[str, Any]:
    result: dict[str, Any] = {
        "request_id": "req-1",
        "output": {"greeting": "hello", "n": 1},
        "error": None,
        "duration_ms": 12.34,
        "total_ms": 13.5,
        "cold_start": True,
        "version": "$LATEST",
    }
    result.update(overrides)
    return result


FAILED = invoke_result(
    output=None,
    cold_start=False,
    error={
        "type": "ZeroDivisionError",
        "message": "division by zero",
        "stack": 'Traceback (most recent call last):\n  File "handler.py", line 2, in handler\n',
    },
)


def test_invoke_prints_the_output_and_a_summary_line(nova: RunNova, api: FakeApi) -> None:
    api.on("POST", "/functions/hello/invoke", invoke_result())

    result = nova("invoke", "hello")

    assert result.exit_code == ExitCode.OK, result.output
    assert api.sent() == [("POST", "/functions/hello/invoke")]
    assert api.last.headers["content-type"] == "application/json"
    assert api.last.content == b"{}"
    assert json.loads(result.stdout) == {"greeting": "hello", "n": 1}
    assert "\n  " in result.stdout  # pretty-printed for people
    assert result.stderr == "req-1 · handler 12.3 ms · total 13.5 ms · cold · $LATEST\n"


def test_invoke_sends_inline_data_unchanged(nova: RunNova, api: FakeApi) -> None:
    api.on("POST", "/functions/hello/invoke", invoke_result())

    nova("invoke", "hello", "--data", '{"name":  "Ada"}')

    assert api.last.content == b'{"name":  "Ada"}'


def test_invoke_reads_data_from_a_file(nova: RunNova, api: FakeApi, tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_bytes(b'{"from": "file"}\n')
    api.on("POST", "/functions/hello/invoke", invoke_result())

    result = nova("invoke", "hello", "--data", f"@{event}")

    assert result.exit_code == ExitCode.OK, result.output
    assert api.last.content == b'{"from": "file"}\n'


def test_invoke_reads_data_from_stdin(nova: RunNova, api: FakeApi) -> None:
    api.on("POST", "/functions/hello/invoke", invoke_result())

    result = nova("invoke", "hello", "--data", "-", input="[1, 2, 3]")

    assert result.exit_code == ExitCode.OK, result.output
    assert api.last.content == b"[1, 2, 3]"


def test_invoke_with_invalid_json_sends_nothing(nova: RunNova, api: FakeApi) -> None:
    result = nova("invoke", "hello", "--data", "{nope")

    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.startswith("error: --data is not valid JSON")
    assert api.requests == []


def test_invoke_with_a_missing_data_file_sends_nothing(
    nova: RunNova, api: FakeApi, tmp_path: Path
) -> None:
    result = nova("invoke", "hello", "--data", f"@{tmp_path / 'missing.json'}")

    assert result.exit_code == ExitCode.USAGE
    assert "cannot read" in result.stderr
    assert api.requests == []


def test_invoke_json_prints_the_whole_response_only(nova: RunNova, api: FakeApi) -> None:
    api.on("POST", "/functions/hello/invoke", invoke_result())

    result = nova("--json", "invoke", "hello")

    assert result.exit_code == ExitCode.OK
    assert json.loads(result.stdout) == invoke_result()
    assert result.stderr == ""


def test_invoke_raw_prints_only_the_output(nova: RunNova, api: FakeApi) -> None:
    api.on("POST", "/functions/hello/invoke", invoke_result())

    result = nova("invoke", "hello", "--raw")

    assert result.stdout == '{"greeting": "hello", "n": 1}\n'
    assert result.stderr == ""


def test_invoke_with_a_qualifier_keeps_the_colon(nova: RunNova, api: FakeApi) -> None:
    api.on("POST", "/functions/hello:prod/invoke", invoke_result(version="3"))

    result = nova("invoke", "hello:prod")

    assert result.exit_code == ExitCode.OK, result.output
    assert api.last.url.raw_path == b"/functions/hello:prod/invoke"


def test_a_function_error_goes_to_stderr_and_exits_function_error(
    nova: RunNova, api: FakeApi
) -> None:
    api.on("POST", "/functions/hello/invoke", FAILED)

    result = nova("invoke", "hello")

    assert result.exit_code == ExitCode.FUNCTION_ERROR
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == "req-1 · handler 12.3 ms · total 13.5 ms · warm · $LATEST"
    assert lines[1] == "error: ZeroDivisionError: division by zero"
    assert lines[2] == "Traceback (most recent call last):"
    assert "handler.py" in lines[3]


def test_a_function_error_with_json_still_exits_function_error(nova: RunNova, api: FakeApi) -> None:
    api.on("POST", "/functions/hello/invoke", FAILED)

    result = nova("--json", "invoke", "hello")

    assert result.exit_code == ExitCode.FUNCTION_ERROR
    assert json.loads(result.stdout) == FAILED
    assert result.stderr == "error: ZeroDivisionError: division by zero\n"


def test_invoke_of_an_unknown_function_exits_not_found(nova: RunNova, api: FakeApi) -> None:
    result = nova("invoke", "nope")  # the fake answers 404 Route.NotFound

    assert result.exit_code == ExitCode.NOT_FOUND
    assert result.stderr == "error: no such route\n"


def timeouts_of(request: httpx.Request) -> dict[str, float | None]:
    timeouts: dict[str, float | None] = request.extensions["timeout"]
    return timeouts


def test_invoke_waits_as_long_as_a_function_may_run(nova: RunNova, api: FakeApi) -> None:
    api.on("POST", "/functions/hello/invoke", invoke_result())
    api.on("GET", "/functions/hello", function_record())

    nova("invoke", "hello")
    invoke_timeouts = timeouts_of(api.last)
    nova("fn", "get", "hello")

    read = invoke_timeouts["read"]
    assert read is not None
    assert read > MAX_TIMEOUT_S
    assert invoke_timeouts["connect"] == DEFAULT_TIMEOUT_S
    assert timeouts_of(api.last)["read"] == DEFAULT_TIMEOUT_S  # other commands keep theirs


def test_an_explicit_timeout_bounds_invoke_too(nova: RunNova, api: FakeApi) -> None:
    api.on("POST", "/functions/hello/invoke", invoke_result())

    nova("--timeout", "5", "invoke", "hello")

    assert timeouts_of(api.last) == {"connect": 5, "read": 5, "write": 5, "pool": 5}


class Terminal(io.StringIO):
    """A stderr that says it is a terminal and tells when a text has been drawn on it."""

    def __init__(self, awaited: str) -> None:
        super().__init__()
        self.awaited = awaited
        self.drawn = threading.Event()

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self.awaited in text:
            self.drawn.set()
        return super().write(text)


def renderer_on(terminal: Terminal) -> Renderer:
    renderer = Renderer()
    renderer.err = Console(file=terminal, force_terminal=True, width=80, color_system=None)
    return renderer


def test_a_long_call_shows_a_spinner_with_the_time_elapsed_on_a_terminal() -> None:
    terminal = Terminal("waiting for hello")
    renderer = renderer_on(terminal)

    def slow_call() -> str:
        assert terminal.drawn.wait(30), "nothing was drawn while the call ran"
        return "answer"

    assert renderer.waiting("waiting for hello", slow_call, after_s=0) == "answer"
    drawn = terminal.getvalue()
    assert "waiting for hello" in drawn
    assert "0:00:0" in drawn  # the elapsed-time column


def test_the_call_s_exception_reaches_the_caller() -> None:
    renderer = renderer_on(Terminal("never"))

    def failing() -> None:
        raise TimedOut("no answer")

    with pytest.raises(TimedOut, match="no answer"):
        renderer.waiting("waiting", failing, after_s=0)


def test_no_spinner_when_stderr_is_not_a_terminal() -> None:
    quiet = io.StringIO()
    renderer = Renderer()
    renderer.err = Console(file=quiet)

    assert renderer.waiting("waiting for hello", lambda: 42, after_s=0) == 42
    assert quiet.getvalue() == ""
