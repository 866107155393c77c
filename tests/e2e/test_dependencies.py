"""Dependencies named by the package are installed at deploy time, cached, and logged."""

from __future__ import annotations

import shutil

import httpx
import pytest

from tests.e2e.daemon_process import DaemonProcess

USES_SIX = "import six\ndef handler(event, context):\n    return {'six': six.__version__}\n"


def test_requirements_are_installed_at_deploy_time(
    api: httpx.Client, daemon: DaemonProcess
) -> None:
    files = {"handler.py": USES_SIX, "requirements.txt": "six==1.17.0\n"}
    response = api.post("/functions", json={"name": "deps", "runtime": "python", "files": files})
    assert response.status_code == 201, response.text
    result = api.post("/functions/deps/invoke", json={}).json()
    assert result["output"] == {"six": "1.17.0"}, result
    build = api.get("/functions/deps/build-log").json()
    assert build["status"] == "success"
    assert "six" in build["log"]
    shown = daemon.cli("fn", "build-log", "deps")
    assert shown.returncode == 0, shown.stderr
    assert "success" in shown.stdout

    # A build that fails changes nothing: the old code keeps serving, and the reason is given.
    broken = {"handler.py": USES_SIX, "requirements.txt": "six==0.0.0-no-such-version\n"}
    refused = api.patch("/functions/deps", json={"files": broken})
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "Build.Failed"
    assert "six" in error["message"]
    assert api.post("/functions/deps/invoke", json={}).json()["output"] == {"six": "1.17.0"}


def test_without_dependency_files_there_is_no_build(api: httpx.Client) -> None:
    code = "def handler(event, context):\n    return 1\n"
    api.post("/functions", json={"name": "plain", "runtime": "python", "code": code})
    assert api.get("/functions/plain/build-log").json()["status"] == "none"
    missing = api.post("/functions", json={"name": "nodeps", "runtime": "python", "code": USES_SIX})
    assert missing.status_code == 201
    error = api.post("/functions/nodeps/invoke", json={}).json()["error"]
    assert error["type"] == "Runtime.ImportModuleError"  # the host's packages stay invisible


def test_package_json_is_installed_at_deploy_time(api: httpx.Client) -> None:
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.skip("node and npm are not installed (apt-get install nodejs npm)")
    files = {
        "index.js": "const isNumber = require('is-number');\n"
        "exports.handler = async (event) => ({ number: isNumber(event.n) });\n",
        "package.json": '{"name": "fn", "version": "1.0.0", "dependencies": {"is-number": "7.0.0"}}',
    }
    response = api.post("/functions", json={"name": "npm-deps", "runtime": "node", "files": files})
    assert response.status_code == 201, response.text
    result = api.post("/functions/npm-deps/invoke", json={"n": 5}).json()
    assert result["output"] == {"number": True}, result
