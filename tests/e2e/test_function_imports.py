"""End to end, on the process backend and in containers (whose root is the host's /usr): a
function imports its runtime's standard library, its own code and what it ships, never a
package the host happens to have installed."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import httpx
import pytest

from nova.sandbox.container.backend import ContainerBackend
from tests.e2e.daemon_process import DaemonProcess, isolated_daemon_api
from tests.host_packages import HOST_YAML_DIR, global_node_module

PYTHON_FILES = {
    "handler.py": (
        "import shipped\n\n"
        "def handler(event, context):\n"
        "    try:\n"
        "        import yaml\n"
        "    except ModuleNotFoundError as exc:\n"
        "        return {'shipped': shipped.VALUE, 'yaml': f'{type(exc).__name__}: {exc}'}\n"
        "    return {'shipped': shipped.VALUE, 'yaml': yaml.__file__}\n"
    ),
    "shipped.py": "VALUE = 'mine'\n",
}
NODE_FILES = {
    "index.js": (
        "const own = require('ownmod');\n"
        "exports.handler = async (event) => {\n"
        "  try {\n"
        "    require(event.global);\n"
        "    return { own: own.value, global: 'found' };\n"
        "  } catch (err) {\n"
        "    return { own: own.value, global: err.code };\n"
        "  }\n"
        "};\n"
    ),
    "node_modules/ownmod/index.js": "exports.value = 'mine';\n",
}
CONFIGS = [
    {"instance_concurrency": 1},
    {"instance_concurrency": 2},
    {"mode": "process"},
]


@pytest.fixture(scope="module", params=["process", "container"])
def api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    data_dir = tmp_path_factory.mktemp(request.param) / "data"
    if request.param == "process":
        daemon = DaemonProcess(data_dir).start()
        try:
            with daemon.client() as client:
                yield client
        finally:
            daemon.stop()
        return
    info = ContainerBackend.probe()
    if not info.available and os.environ.get("CI") != "true":
        pytest.skip(f"container backend unavailable here: {info.reason}")
    with isolated_daemon_api(data_dir, "container") as client:
        yield client


def deploy(api: httpx.Client, name: str, body: dict[str, object]) -> None:
    api.delete(f"/functions/{name}")
    response = api.post("/functions", json={"name": name, **body})
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("config", CONFIGS, ids=["direct", "relayed", "process-mode"])
def test_a_host_python_package_is_not_importable(
    api: httpx.Client, config: dict[str, object]
) -> None:
    if HOST_YAML_DIR is None and os.environ.get("CI") != "true":
        pytest.skip("the host's python3 cannot import yaml (install python3-yaml)")
    assert HOST_YAML_DIR is not None, "install python3-yaml"
    env = {"PYTHONPATH": HOST_YAML_DIR}
    deploy(api, "imports", {"runtime": "python", "files": PYTHON_FILES, "env": env, **config})

    result = api.post("/functions/imports/invoke", json={}).json()

    assert result["error"] is None, result
    assert result["output"] == {
        "shipped": "mine",
        "yaml": "ModuleNotFoundError: No module named 'yaml'",
    }


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed on this host")
@pytest.mark.parametrize("config", CONFIGS, ids=["direct", "relayed", "process-mode"])
def test_a_globally_installed_node_module_is_not_requirable(
    api: httpx.Client, config: dict[str, object]
) -> None:
    installed = global_node_module()
    if installed is None:
        pytest.skip("no node module is installed globally here")
    folder, name = installed
    env = {"NODE_PATH": folder}
    deploy(api, "requires", {"runtime": "node", "files": NODE_FILES, "env": env, **config})

    result = api.post("/functions/requires/invoke", json={"global": name}).json()

    assert result["error"] is None, result
    assert result["output"] == {"own": "mine", "global": "MODULE_NOT_FOUND"}
