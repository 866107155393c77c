"""Code that does not parse is refused when it is deployed (422 Code.SyntaxError, naming the
file and the line), over HTTP and through the CLI, and nothing is stored."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from nova.cli.exit_codes import ExitCode
from tests.e2e.daemon_process import DaemonProcess

GOOD = "def handler(event, context):\n    return 'good'\n"
BROKEN = "def handler(event, context):\n    return {'a': 1\n"


def error_of(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()["error"]
    return response.status_code, body["code"], body["message"]


def test_create_with_a_python_syntax_error_is_refused(api: httpx.Client) -> None:
    response = api.post("/functions", json={"name": "broken", "runtime": "python", "code": BROKEN})

    status, code, message = error_of(response)
    assert (status, code) == (422, "Code.SyntaxError")
    assert message == "code: handler.py line 2: SyntaxError: '{' was never closed: return {'a': 1"
    assert api.get("/functions/broken").status_code == 404


def test_update_with_a_syntax_error_keeps_the_old_code(api: httpx.Client) -> None:
    created = api.post("/functions", json={"name": "kept", "runtime": "python", "code": GOOD})
    assert created.status_code == 201, created.text
    files = {"handler.py": "from helpers import x\n" + GOOD, "helpers.py": "x = (1,\n"}

    status, code, message = error_of(api.patch("/functions/kept", json={"files": files}))

    assert (status, code) == (422, "Code.SyntaxError")
    assert message.startswith("code: helpers.py line 1: SyntaxError:")
    assert api.post("/functions/kept/invoke", json={}).json()["output"] == "good"


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed on this host")
def test_a_node_syntax_error_is_refused_with_its_line(api: httpx.Client) -> None:
    files = {"index.js": "exports.handler = async () => {\n  return [1, 2;\n};\n"}

    response = api.post("/functions", json={"name": "nodebad", "runtime": "node", "files": files})

    status, code, message = error_of(response)
    assert (status, code) == (422, "Code.SyntaxError")
    assert message.startswith("code: index.js line 2: SyntaxError:")


def test_the_cli_reports_the_file_and_line_and_exits_invalid(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    source = tmp_path / "handler.py"
    source.write_text(BROKEN)

    result = daemon.cli("fn", "create", "broken", "--runtime", "python", "--code-file", str(source))

    assert result.returncode == ExitCode.INVALID
    assert result.stderr == (
        "error: code: handler.py line 2: SyntaxError: '{' was never closed: return {'a': 1\n"
    )
