"""Compiled languages build in the background: compile_status, the compiler's output, and a
failed build of an update leaving the previous build serving (Go, the real toolchain)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.e2e.daemon_process import DaemonProcess

SAYS = (
    "package main\n\nfunc Handler(event map[string]any) (map[string]any, error) {\n"
    '    return map[string]any{"says": "WORD"}, nil\n}\n'
)
BROKEN = "package main\n\nfunc Handler(event map[string]any) (map[string]any, error) {\n    retur\n"


@pytest.fixture(autouse=True)
def _needs_go(api: httpx.Client) -> None:
    go = {item["name"]: item for item in api.get("/runtimes").json()["items"]}["go"]
    if not go["available"]:
        pytest.skip(f"the go runtime is unavailable here: {go['reason']} (make runtimes)")


def settled(api: httpx.Client, name: str) -> dict[str, Any]:
    """The function once its build has ended (success or failed)."""
    deadline = time.monotonic() + 300  # a first build compiles Go's standard library
    while True:
        record: dict[str, Any] = api.get(f"/functions/{name}").json()
        if record["compile_status"] in ("success", "failed") or time.monotonic() > deadline:
            return record
        time.sleep(0.2)


def says(api: httpx.Client, name: str) -> Any:
    return api.post(f"/functions/{name}/invoke", json={}).json()["output"]


def test_a_go_syntax_error_reports_failed_with_the_compiler_output(
    api: httpx.Client, daemon: DaemonProcess
) -> None:
    created = api.post("/functions", json={"name": "broken", "runtime": "go", "code": BROKEN})
    assert created.status_code == 201, created.text
    assert created.json()["compile_status"] in ("pending", "compiling", "failed")
    record = settled(api, "broken")
    assert record["compile_status"] == "failed", record
    assert "handler.go:5" in record["compile_output"], record["compile_output"]
    assert "syntax error" in record["compile_output"]

    response = api.post("/functions/broken/invoke", json={})
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["code"] == "Function.CompileFailed"
    assert "syntax error" in error["message"]

    build = api.get("/functions/broken/build-log").json()
    assert build["status"] == "failed"
    assert "syntax error" in build["log"]
    shown = daemon.cli("fn", "get", "broken")
    assert shown.returncode == 0, shown.stderr
    assert "failed" in shown.stdout
    assert "nova fn build-log broken" in shown.stdout
    log = daemon.cli("fn", "build-log", "broken")
    assert "syntax error" in log.stdout


def test_a_failed_build_of_an_update_leaves_the_previous_build_serving(
    api: httpx.Client,
) -> None:
    code = SAYS.replace("WORD", "one")
    created = api.post("/functions", json={"name": "word", "runtime": "go", "code": code})
    assert created.status_code == 201, created.text
    assert says(api, "word") == {"says": "one"}  # the first invocation waits for the build
    assert api.get("/functions/word").json()["compile_status"] == "success"

    updated = api.patch("/functions/word", json={"code": BROKEN})
    assert updated.status_code == 200, updated.text
    assert settled(api, "word")["compile_status"] == "failed"
    assert says(api, "word") == {"says": "one"}

    api.patch("/functions/word", json={"code": SAYS.replace("WORD", "two")}).raise_for_status()
    assert settled(api, "word")["compile_status"] == "success"
    deadline = time.monotonic() + 60  # the move to the new build follows its success
    while says(api, "word") != {"says": "two"} and time.monotonic() < deadline:
        time.sleep(0.1)
    assert says(api, "word") == {"says": "two"}


def test_interpreted_functions_have_no_compile_status(api: httpx.Client) -> None:
    body = {"name": "py", "runtime": "python", "code": "def handler(e, c):\n    return 1\n"}
    assert api.post("/functions", json=body).json()["compile_status"] is None
