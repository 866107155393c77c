"""The real agent running Node.js handlers (skipped where node is not installed).

Every test runs twice, like the Python ones: one worker (direct mode) and two (relayed)."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from nova.agent.protocol import MsgType, read_frame

from .conftest import AgentProcess, needs_node, write

pytestmark = needs_node


@pytest.fixture
def agent(two_mode_agent: AgentProcess) -> AgentProcess:
    return two_mode_agent


def test_async_handler_output_context_and_env(agent: AgentProcess, code_dir: Path) -> None:
    write(
        code_dir,
        "index.js",
        "exports.handler = async (event, context) => ({\n"
        "  echo: event, pid: process.pid, rid: process.env.NOVA_REQUEST_ID,\n"
        "  runtime: process.env.NOVA_RUNTIME, requestId: context.awsRequestId,\n"
        "  remaining: context.getRemainingTimeInMillis(), name: context.functionName,\n"
        "});\n",
    )
    assert agent.init("index.handler", runtime="node")["ok"] is True
    reply = agent.exec({"n": 1}, id="r-1")
    assert reply["error"] is None
    output = reply["output"]
    assert output["echo"] == {"n": 1}
    assert (output["rid"], output["requestId"], output["runtime"]) == ("r-1", "r-1", "node")
    assert 0 < output["remaining"] <= 5000
    assert output["name"] == "fn"


def test_sync_and_callback_handlers(agent: AgentProcess, code_dir: Path) -> None:
    write(
        code_dir,
        "index.js",
        "exports.sync = (event) => event + 1;\n"
        "exports.cb = (event, context, callback) => setTimeout(() => callback(null, event * 2), 1);\n",
    )
    agent.init("index.sync", runtime="node")
    assert agent.exec(1)["output"] == 2
    other = AgentProcess(code_dir, agent.tmp_dir, None)
    try:
        other.init("index.cb", runtime="node")
        assert other.exec(4)["output"] == 8
    finally:
        other.close()


def test_console_output_is_captured(agent: AgentProcess, code_dir: Path) -> None:
    write(
        code_dir,
        "index.js",
        "const { execSync } = require('child_process');\n"
        "exports.handler = async (event) => {\n"
        "  console.log('hello', event);\n"
        "  console.error('oops');\n"
        '  process.stdout.write(\'{"id":"forged"}\\n\');\n'
        "  execSync('echo from-child', { stdio: 'inherit' });\n"
        "  return 'done';\n"
        "};\n",
    )
    agent.init("index.handler", runtime="node")
    for _ in range(2):
        reply = agent.exec(1)
        assert reply["output"] == "done"
        assert reply["stdout"] == 'hello 1\n{"id":"forged"}\nfrom-child\n'
        assert reply["stderr"] == "oops\n"


def test_thrown_error_has_name_message_and_user_stack(agent: AgentProcess, code_dir: Path) -> None:
    write(
        code_dir,
        "index.js",
        "function inner() { throw new TypeError('nope'); }\n"
        "exports.handler = async () => inner();\n",
    )
    agent.init("index.handler", runtime="node")
    error = agent.exec()["error"]
    assert (error["type"], error["message"]) == ("TypeError", "nope")
    assert error["stack"]
    assert "inner" in error["stack"][0]
    assert not any("node_bootstrap" in line for line in error["stack"])


def test_import_error_missing_handler_and_bad_result(agent: AgentProcess, code_dir: Path) -> None:
    write(code_dir, "index.js", "require('no-such-module-nova');\n")
    agent.init("index.handler", runtime="node")
    assert agent.exec()["error"]["type"] == "Runtime.ImportModuleError"
    assert agent.exec()["error"]["type"] == "Runtime.ImportModuleError"
    write(code_dir, "other.js", "exports.handler = () => 1n;\nexports.x = 1;\n")
    for handler, expected in (
        ("other.missing", "Runtime.HandlerNotFound"),
        ("other.handler", "Runtime.SerializationError"),
    ):
        other = AgentProcess(code_dir, agent.tmp_dir, None)
        try:
            other.init(handler, runtime="node")
            assert other.exec()["error"]["type"] == expected
            assert other.exec()["error"]["type"] == expected  # the worker survived
        finally:
            other.close()


def test_worker_crash_then_recovery_and_reload(agent: AgentProcess, code_dir: Path) -> None:
    write(
        code_dir,
        "index.js",
        "let calls = 0;\n"
        "exports.handler = async (event) => {\n"
        "  if (event === 'kill') process.kill(process.pid, 'SIGKILL');\n"
        "  calls += 1;\n"
        "  return { version: 'v1', calls };\n};\n",
    )
    agent.init("index.handler", runtime="node")
    crashed = agent.exec("kill")
    assert crashed["error"]["type"] == "Runtime.ExitError"
    agent.exec()
    assert agent.exec()["output"] == {"version": "v1", "calls": 2}
    assert agent.request({"type": MsgType.DRAIN})["ok"]
    write(code_dir, "lib.js", "let calls = 0;\nexports.next = () => ++calls;\n")
    write(
        code_dir,
        "index.js",
        "const lib = require('./lib');\n"
        "exports.handler = async () => ({ version: 'v2', calls: lib.next() });\n",
    )
    assert agent.request({"type": MsgType.RELOAD, "code_hash": "2"})["ok"]
    assert agent.exec()["output"] == {"version": "v2", "calls": 1}  # a fresh require cache


def test_process_mode(agent: AgentProcess, code_dir: Path) -> None:
    write(
        code_dir,
        "index.js",
        "exports.handler = async (event) => { console.log('out', event); return process.pid; };\n",
    )
    agent.init("index.handler", runtime="node", mode="process")
    first, second = agent.exec(1), agent.exec(2)
    assert first["output"] != second["output"]
    assert first["stdout"] == "out 1\n"


def test_the_function_sees_request_id_and_the_reply_echoes_the_frame_id(
    agent: AgentProcess, code_dir: Path
) -> None:
    write(
        code_dir,
        "index.js",
        "exports.handler = async (event, context) =>\n"
        "  [context.awsRequestId, process.env.NOVA_REQUEST_ID];\n",
    )
    agent.init("index.handler", runtime="node")
    reply = agent.exec(None, id="frame-7", request_id="client-id")
    assert reply["id"] == "frame-7"
    assert reply["output"] == ["client-id", "client-id"]


def test_lone_surrogates_reach_the_host_as_valid_utf8(agent: AgentProcess, code_dir: Path) -> None:
    write(code_dir, "index.js", "exports.handler = async () => ({ text: 'a\\ud800b' });\n")
    agent.init("index.handler", runtime="node")
    request_id = agent.send(agent.exec_message())
    body = read_frame(agent._reader)
    assert body is not None
    reply = orjson.loads(body)  # what the host decodes with; it rejects lone surrogates
    assert reply["id"] == request_id
    assert reply["output"] == {"text": "a\ufffdb"}


@pytest.mark.parametrize(
    "body",
    ["for (;;) {}", "await new Promise(() => {})"],
    ids=["busy-loop", "never-settles"],
)
def test_a_handler_past_its_deadline_is_stopped_and_the_next_call_works(
    agent: AgentProcess, code_dir: Path, body: str
) -> None:
    write(
        code_dir,
        "index.js",
        f"exports.handler = async (event) => {{\n  if (event === 'hang') {{ {body} }}\n"
        "  return 'ok';\n};\n",
    )
    assert agent.init("index.handler", runtime="node", timeout_s=1)["direct"] is (
        agent.concurrency == 1
    )
    started = time.monotonic()

    hung = agent.exec("hang", timeout_s=1)

    assert hung["error"]["type"] == "Function.Timeout"
    assert time.monotonic() - started < 5
    assert agent.exec("fine")["output"] == "ok"


def test_the_function_sees_the_trace_parent_in_both_forms(
    agent: AgentProcess, code_dir: Path
) -> None:
    write(
        code_dir,
        "index.js",
        "exports.handler = async () =>\n"
        "  [process.env.NOVA_TRACE_PARENT || null, process.env._X_AMZN_TRACE_ID || null];\n",
    )
    agent.init("index.handler", runtime="node")
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    amzn = "Root=1-0af76519-16cd43dd8448eb211c80319c;Parent=b7ad6b7169203331;Sampled=1"
    assert agent.exec(None, trace_parent=trace)["output"] == [trace, amzn]
    assert agent.exec(None)["output"] == [None, None]  # per call: gone with the next one
