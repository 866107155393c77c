"""A Node worker started before Init (Prestart) becomes the function's worker at Init."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest

from nova.agent.protocol import MsgType

from .conftest import NODE, AgentProcess, needs_node, write

pytestmark = needs_node

HANDLER = (
    "const seen = require('fs').readdirSync('.');\n"
    "let calls = 0;\n"
    "exports.handler = async (event) => ({\n"
    "  pid: process.pid, cwd: process.cwd(), calls: ++calls, seen,\n"
    "  greeting: process.env.GREETING, env: process.env,\n"
    "  fn: process.env.NOVA_FUNCTION_NAME, rid: process.env.NOVA_REQUEST_ID,\n"
    "});\n"
)


def _prestart(agent: AgentProcess, memory_mb: int = 128, **fields: Any) -> dict[str, Any]:
    message = {
        "type": MsgType.PRESTART,
        "runtime": "node",
        "interpreter": NODE,
        "memory_mb": memory_mb,
        "tmp_dir": str(agent.tmp_dir),
        **fields,
    }
    return agent.request(message)


def test_init_specialises_the_prestarted_worker(agent: AgentProcess, code_dir: Path) -> None:
    write(code_dir, "index.js", HANDLER)
    started = _prestart(agent)
    assert started["ok"] is True, started
    reply = agent.init("index.handler", runtime="node", env={"GREETING": "hi"})
    assert (reply["ok"], reply["prestarted"]) == (True, True)
    output = agent.exec({}, id="r-1")["output"]
    assert output["pid"] == started["worker_pid"]  # the process started before Init
    assert output["cwd"] == str(code_dir)
    assert output["seen"] == ["index.js"]  # its init code ran in the code directory
    assert (output["greeting"], output["fn"], output["rid"]) == ("hi", "fn", "r-1")
    assert agent.exec({})["output"]["calls"] == 2
    # Exactly the environment a worker spawned for the function has, nothing of the agent's.
    spawned = AgentProcess(code_dir, agent.tmp_dir, None)
    try:
        assert spawned.init("index.handler", runtime="node", env={"GREETING": "hi"})["ok"]
        assert spawned.exec({}, id="r-1")["output"]["env"] == output["env"]
    finally:
        spawned.close()


def test_init_of_another_memory_size_starts_a_new_worker(
    agent: AgentProcess, code_dir: Path
) -> None:
    write(code_dir, "index.js", HANDLER)
    started = _prestart(agent, memory_mb=512)
    reply = agent.init("index.handler", runtime="node", memory_mb=128)
    assert (reply["ok"], reply["prestarted"]) == (True, False)
    assert agent.exec({})["output"]["pid"] != started["worker_pid"]
    assert not os.path.exists(f"/proc/{started['worker_pid']}")  # discarded and reaped


def test_a_prestarted_worker_reports_the_function_s_import_error(
    agent: AgentProcess, code_dir: Path
) -> None:
    write(code_dir, "index.js", "throw new Error('broken at load');\n")
    _prestart(agent)
    assert agent.init("index.handler", runtime="node")["prestarted"] is True
    error = agent.exec({})["error"]
    assert error["type"] == "Runtime.ImportModuleError"
    assert "broken at load" in error["message"]


def test_prestart_of_another_runtime_or_after_init_is_refused(
    agent: AgentProcess, code_dir: Path
) -> None:
    refused = _prestart(agent, runtime="php")
    assert refused["ok"] is False
    assert "cannot pre-start 'php'" in refused["error"]["message"]
    write(code_dir, "index.js", HANDLER)
    agent.init("index.handler", runtime="node")
    assert _prestart(agent)["ok"] is False


def test_a_prestarted_worker_that_died_is_replaced_at_init(
    agent: AgentProcess, code_dir: Path
) -> None:
    write(code_dir, "index.js", HANDLER)
    started = _prestart(agent)
    os.kill(started["worker_pid"], signal.SIGKILL)
    reply = agent.init("index.handler", runtime="node")
    assert (reply["ok"], reply["prestarted"]) == (True, False)
    assert agent.exec({})["output"]["calls"] == 1


RUBY = shutil.which("ruby")
RUBY_HANDLER = (
    "CALLS = [0]\n"
    "LOADED_IN = Dir.pwd\n"
    "def handler(event:, context:)\n"
    "  CALLS[0] += 1\n"
    "  { 'pid' => Process.pid, 'cwd' => LOADED_IN, 'calls' => CALLS[0],\n"
    "    'greeting' => ENV['GREETING'], 'env' => ENV.to_h.keys.sort }\n"
    "end\n"
)


@pytest.mark.skipif(RUBY is None, reason="ruby is not installed on this host")
def test_init_specialises_a_prestarted_ruby_client(agent: AgentProcess, code_dir: Path) -> None:
    write(code_dir, "handler.rb", RUBY_HANDLER)
    started = _prestart(agent, runtime="ruby", interpreter=RUBY)
    assert started["ok"] is True, started
    fields = {"runtime": "ruby", "interpreter": RUBY, "env": {"GREETING": "hi"}}
    reply = agent.init("handler.handler", **fields)
    assert (reply["ok"], reply["prestarted"]) == (True, True)
    output = agent.exec({})["output"]
    assert output["pid"] == started["worker_pid"]
    assert (output["cwd"], output["greeting"], output["calls"]) == (str(code_dir), "hi", 1)
    spawned = AgentProcess(code_dir, agent.tmp_dir, None)
    try:
        assert spawned.init("handler.handler", **fields)["prestarted"] is False
        # Exactly the variables a client spawned for the function has.
        assert spawned.exec({})["output"]["env"] == output["env"]
    finally:
        spawned.close()
