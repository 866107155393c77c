"""A function imports its runtime's standard library, its own code and what it ships: never
the host's packages (site-packages / dist-packages, global node module folders), whatever
PYTHONPATH or NODE_PATH say. Every worker start is covered: forked or spawned Python workers,
direct (concurrency 1) and relayed (2) persistent workers, and process mode."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.host_packages import HOST_YAML_DIR, STDLIB_PATH, global_node_module

from .conftest import NODE, PYTHON, AgentProcess, needs_node, write

needs_host_yaml = pytest.mark.skipif(
    HOST_YAML_DIR is None and os.environ.get("CI") != "true",
    reason=f"{PYTHON} cannot import yaml here (install python3-yaml)",
)

PYTHON_PROBE = """
import sys
import shipped

def handler(event, context):
    try:
        import yaml
    except ModuleNotFoundError as exc:
        yaml_error = type(exc).__name__ + ": " + str(exc)
    else:
        yaml_error = "imported from " + yaml.__file__
    loaded = [
        name for name, module in sys.modules.items()
        if "-packages" in (getattr(module, "__file__", None) or "")
    ]
    return {
        "shipped": shipped.VALUE, "yaml": yaml_error, "path": sys.path, "exit": callable(exit),
        "site_modules": loaded,
    }
"""


@pytest.fixture(params=["forked", "spawned"])
def interpreter(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The function's Python: the agent's own binary (its workers are forked from the agent)
    or, behind a wrapper script, what looks like another one (its workers are spawned)."""
    if request.param == "forked":
        return PYTHON
    wrapper = tmp_path / "python-wrapper"
    wrapper.write_text(f'#!/bin/sh\nexec {PYTHON} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


@needs_host_yaml
@pytest.mark.parametrize(
    ("mode", "concurrency"),
    [("persistent", 1), ("persistent", 2), ("process", 1)],
    ids=["direct", "relayed", "process"],
)
def test_python_functions_see_only_the_stdlib_and_their_code(
    same_python_agent: AgentProcess, code_dir: Path, interpreter: str, mode: str, concurrency: int
) -> None:
    assert HOST_YAML_DIR is not None, f"{PYTHON} cannot import yaml: install python3-yaml"
    write(code_dir, "handler.py", PYTHON_PROBE)
    write(code_dir, "shipped.py", "VALUE = 'mine'\n")
    init = same_python_agent.init(
        mode=mode,
        concurrency=concurrency,
        interpreter=interpreter,
        env={"PYTHONPATH": HOST_YAML_DIR},  # ignored: it must not reopen the host's packages
    )
    assert init["ok"], init

    reply = same_python_agent.exec()

    assert reply["error"] is None, reply
    output = reply["output"]
    assert output["shipped"] == "mine"
    assert output["yaml"] == "ModuleNotFoundError: No module named 'yaml'"
    assert output["path"] == [str(code_dir), *STDLIB_PATH]
    assert output["exit"] is True  # site's builtins are there, its search paths are not
    assert output["site_modules"] == []  # no .pth file of the host's ran either


NODE_PROBE = """
const own = require('ownmod');
const sibling = require('./lib/sibling');
function tryRequire(name) {
  try {
    require(name);
    return 'found';
  } catch (err) {
    return err.code;
  }
}
exports.handler = async (event) => ({
  own: own.value,
  sibling: sibling.value,
  global: tryRequire(event.global),
  home: tryRequire('homemod'),
  parent: tryRequire('parentmod'),
});
"""


def module(root: Path, name: str) -> None:
    write(root, f"{name}/index.js", f"exports.value = {json.dumps(name)};\n")


@needs_node
@pytest.mark.parametrize(
    ("mode", "concurrency"),
    [("persistent", 1), ("persistent", 2), ("process", 1)],
    ids=["direct", "relayed", "process"],
)
def test_node_functions_see_only_their_own_modules(
    same_python_agent: AgentProcess, code_dir: Path, mode: str, concurrency: int
) -> None:
    installed = global_node_module()
    assert installed is not None, "no globally installed node module here (apt install npm)"
    folder, name = installed
    write(code_dir, "index.js", NODE_PROBE)
    write(code_dir, "lib/sibling.js", "exports.value = 'sibling';\n")
    module(code_dir / "node_modules", "ownmod")
    module(Path(same_python_agent.tmp_dir) / ".node_modules", "homemod")  # $HOME's global folder
    module(code_dir.parent / "node_modules", "parentmod")  # a directory above the code
    init = same_python_agent.init(
        "index.handler",
        runtime="node",
        interpreter=NODE,
        mode=mode,
        concurrency=concurrency,
        env={"NODE_PATH": folder},  # ignored: it must not reopen the host's modules
    )
    assert init["ok"], init

    reply = same_python_agent.exec({"global": name})

    assert reply["error"] is None, reply
    assert reply["output"] == {
        "own": "ownmod",
        "sibling": "sibling",
        "global": "MODULE_NOT_FOUND",
        "home": "MODULE_NOT_FOUND",
        "parent": "MODULE_NOT_FOUND",
    }
