"""Failures: one `error:` line on stderr, a named exit code, tracebacks only with --debug."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
import typer

from nova.cli.errors import (
    Aborted,
    ApiError,
    BadResponse,
    DaemonFailed,
    FunctionFailed,
    TimedOut,
    Unreachable,
    UsageProblem,
)
from nova.cli.exit_codes import ExitCode, exit_code_for, exit_code_for_api
from nova.core.errors import FunctionNotFound, StoreUnavailable

from .fakes import FakeApi, RunNova, error_body, function_record


def refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("[Errno 111] Connection refused", request=request)


def test_exit_codes_are_stable() -> None:
    assert {code.name: code.value for code in ExitCode} == {
        "OK": 0,
        "ERROR": 1,
        "USAGE": 2,
        "NOT_FOUND": 3,
        "CONFLICT": 4,
        "INVALID": 5,
        "UNREACHABLE": 6,
        "THROTTLED": 7,
        "FUNCTION_ERROR": 8,
        "SERVER_ERROR": 9,
        "TIMED_OUT": 10,
        "ABORTED": 11,
        "DAEMON_FAILED": 12,
        "INTERRUPTED": 130,
        "BROKEN_PIPE": 141,
    }


def test_the_readme_documents_every_exit_code() -> None:
    readme = (Path(__file__).parents[3] / "README.md").read_text()
    section = readme[readme.index("## CLI") : readme.index("## Configuration")]
    documented = {int(number) for number in re.findall(r"^\| `(\d+)` \|", section, re.M)}

    assert documented == {code.value for code in ExitCode}


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("Function.NotFound", 404, ExitCode.NOT_FOUND),
        ("Alias.NotFound", 404, ExitCode.NOT_FOUND),
        (None, 404, ExitCode.NOT_FOUND),
        ("Function.AlreadyExists", 409, ExitCode.CONFLICT),
        (None, 409, ExitCode.CONFLICT),
        ("Request.Invalid", 422, ExitCode.INVALID),
        ("Request.MalformedJson", 400, ExitCode.INVALID),
        ("Request.PayloadTooLarge", 413, ExitCode.INVALID),
        ("Runtime.Unavailable", 422, ExitCode.INVALID),
        ("Function.TooManyRequests", 429, ExitCode.THROTTLED),
        ("Daemon.ShuttingDown", 503, ExitCode.SERVER_ERROR),
        ("Sandbox.Failed", 502, ExitCode.SERVER_ERROR),
        (None, 500, ExitCode.SERVER_ERROR),
        (None, 401, ExitCode.INVALID),
        (None, 405, ExitCode.INVALID),
        (None, 302, ExitCode.SERVER_ERROR),
        ("Config.Invalid", 422, ExitCode.USAGE),
        ("Daemon.StartFailed", 503, ExitCode.DAEMON_FAILED),
    ],
)
def test_api_errors_map_to_exit_codes(code: str | None, status: int, expected: ExitCode) -> None:
    assert exit_code_for_api(code, status) is expected


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ApiError("Function.NotFound", "gone", 404), ExitCode.NOT_FOUND),
        (Unreachable("http://x", "refused"), ExitCode.UNREACHABLE),
        (FunctionFailed("ValueError: x"), ExitCode.FUNCTION_ERROR),
        (BadResponse("not json"), ExitCode.SERVER_ERROR),
        (TimedOut("slow"), ExitCode.TIMED_OUT),
        (Aborted("not deleted"), ExitCode.ABORTED),
        (DaemonFailed("cannot load the daemon"), ExitCode.DAEMON_FAILED),
        (UsageProblem("cannot read x"), ExitCode.USAGE),
        (BrokenPipeError(), ExitCode.BROKEN_PIPE),
        (FunctionNotFound("f"), ExitCode.NOT_FOUND),
        (StoreUnavailable("db down"), ExitCode.SERVER_ERROR),
        (KeyboardInterrupt(), ExitCode.INTERRUPTED),
        (RuntimeError("bug"), ExitCode.ERROR),
    ],
)
def test_failures_map_to_exit_codes(exc: BaseException, expected: ExitCode) -> None:
    assert exit_code_for(exc) is expected


def test_not_found_prints_one_line_and_exits_not_found(nova: RunNova, api: FakeApi) -> None:
    api.on(
        "GET",
        "/functions/nope",
        error_body("Function.NotFound", "function 'nope' does not exist"),
        status=404,
    )

    result = nova("fn", "get", "nope")

    assert result.exit_code == ExitCode.NOT_FOUND
    assert result.stdout == ""
    assert result.stderr == "error: function 'nope' does not exist\n"


def test_unreachable_daemon_exits_unreachable_with_a_hint(nova: RunNova) -> None:
    result = nova("fn", "list", transport=httpx.MockTransport(refuse))

    assert result.exit_code == ExitCode.UNREACHABLE
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: cannot reach the Nova daemon at http://127.0.0.1:9000: "
        "[Errno 111] Connection refused",
        "hint: is the daemon running? start it with `nova daemon` or `make run`",
    ]


def test_debug_adds_the_traceback_and_the_http_trace(nova: RunNova) -> None:
    result = nova("--debug", "health", transport=httpx.MockTransport(refuse))

    assert result.exit_code == ExitCode.UNREACHABLE
    assert "> GET http://127.0.0.1:9000/health" in result.stderr
    assert "Traceback (most recent call last)" in result.stderr
    assert "httpx.ConnectError" in result.stderr
    assert "error: cannot reach the Nova daemon" in result.stderr


def test_throttled_says_when_to_retry(nova: RunNova, api: FakeApi) -> None:
    api.on(
        "POST",
        "/functions/hello/invoke",
        error_body("Function.TooManyRequests", "hello is at max_replicas"),
        status=429,
        headers={"Retry-After": "2"},
    )

    result = nova("invoke", "hello")

    assert result.exit_code == ExitCode.THROTTLED
    assert result.stderr.splitlines() == ["error: hello is at max_replicas", "hint: retry after 2s"]


def test_validation_errors_exit_invalid(nova: RunNova, api: FakeApi) -> None:
    api.on(
        "PATCH",
        "/functions/hello",
        error_body("Request.Invalid", "memory_mb: must be at least 64"),
        status=422,
    )

    result = nova("fn", "update", "hello", "--memory", "1")

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == "error: memory_mb: must be at least 64\n"


def test_a_server_error_without_a_json_body_is_still_one_line(nova: RunNova, api: FakeApi) -> None:
    api.on(
        "GET",
        "/functions/hello",
        handler=lambda request: httpx.Response(502, text="<html>Bad Gateway</html>"),
    )

    result = nova("fn", "get", "hello")

    assert result.exit_code == ExitCode.SERVER_ERROR
    assert result.stderr == "error: HTTP 502 Bad Gateway: <html>Bad Gateway</html>\n"


def test_a_success_that_is_not_json_is_a_server_error(nova: RunNova, api: FakeApi) -> None:
    api.on("GET", "/functions/hello", handler=lambda request: httpx.Response(200, text="hi"))

    result = nova("fn", "get", "hello")

    assert result.exit_code == ExitCode.SERVER_ERROR
    assert result.stderr.startswith("error: GET /functions/hello answered 200 with a body")


def test_a_timeout_suggests_raising_it(nova: RunNova) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    result = nova("--timeout", "2", "invoke", "hello", transport=httpx.MockTransport(slow))

    assert result.exit_code == ExitCode.TIMED_OUT
    assert (
        result.stderr.splitlines()[1] == "hint: raise the limit with `nova --timeout SECONDS ...`"
    )


def test_an_unexpected_exception_is_one_line_without_debug(nova: RunNova) -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("boom")

    result = nova("fn", "list", transport=httpx.MockTransport(broken))

    assert result.exit_code == ExitCode.ERROR
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "error: unexpected RuntimeError: boom",
        "hint: run again with `nova --debug ...` to see the traceback",
    ]


def test_ctrl_c_exits_interrupted(nova: RunNova) -> None:
    def interrupted(request: httpx.Request) -> httpx.Response:
        raise KeyboardInterrupt

    result = nova("fn", "list", transport=httpx.MockTransport(interrupted))

    assert result.exit_code == ExitCode.INTERRUPTED
    assert result.stderr == "error: interrupted\n"


def test_bad_arguments_keep_the_parsers_usage_exit(nova: RunNova, api: FakeApi) -> None:
    result = nova("fn", "create", "hello")  # --runtime is required

    assert result.exit_code == ExitCode.USAGE
    assert api.requests == []


def test_endpoint_option_and_environment(
    nova: RunNova, api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.on("GET", "/functions/hello", function_record())

    nova("--endpoint", "nova.test:1234/", "fn", "get", "hello")
    assert str(api.last.url) == "http://nova.test:1234/functions/hello"

    monkeypatch.setenv("NOVA_ENDPOINT", "https://nova.example")
    nova("fn", "get", "hello")
    assert str(api.last.url) == "https://nova.example/functions/hello"


def test_names_are_escaped_in_paths(nova: RunNova, api: FakeApi) -> None:
    nova("fn", "get", "../admin")

    assert api.last.url.raw_path == b"/functions/..%2Fadmin"


def test_a_closed_stdout_exits_broken_pipe(
    nova: RunNova, api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.on("GET", "/functions/hello", function_record())

    def closed(*args: object, **kwargs: object) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr("nova.cli.render.Renderer.fields", closed)

    result = nova("fn", "get", "hello")

    assert result.exit_code == ExitCode.BROKEN_PIPE
    assert result.stderr == ""


def test_an_interrupted_prompt_exits_aborted(
    nova: RunNova, api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise typer.Abort

    monkeypatch.setattr("nova.cli.render.Renderer.fields", interrupted)
    api.on("GET", "/functions/hello", function_record())

    result = nova("fn", "get", "hello")

    assert result.exit_code == ExitCode.ABORTED
    assert result.stderr == "error: aborted\n"


@pytest.mark.parametrize(
    "args",
    [
        ["fn", "get"],  # a missing argument
        ["--bogus", "health"],  # an unknown option
        ["logs", "--limit", "0"],  # a value out of range
        ["nonsense"],  # an unknown command
    ],
)
def test_every_command_line_mistake_exits_usage(
    nova: RunNova, api: FakeApi, args: list[str]
) -> None:
    result = nova(*args)

    assert result.exit_code == ExitCode.USAGE
    assert api.requests == []
