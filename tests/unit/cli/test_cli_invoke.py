"""`nova invoke`: payloads in, output and the summary line out, function errors as exit 8."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nova.cli.exit_codes import ExitCode

from .fakes import FakeApi, RunNova


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
