"""The real agent running Python handlers, persistent and process mode, over a socketpair.

Every test runs twice: with the Init default of one worker (direct mode: the worker reads the
connection itself) and of two workers (relayed through the agent's runner)."""

from __future__ import annotations

import os
import struct
import time
from collections import Counter
from pathlib import Path

import pytest

from nova.agent.protocol import MsgType

from .conftest import AgentProcess, write


@pytest.fixture
def agent(two_mode_agent: AgentProcess) -> AgentProcess:
    return two_mode_agent


HELLO = """
import os

def handler(event, context):
    return {"echo": event, "pid": os.getpid()}
"""


def test_init_replies_with_protocol_version_and_pid(agent: AgentProcess, code_dir: Path) -> None:
    write(code_dir, "handler.py", HELLO)
    reply = agent.init()
    assert reply["ok"] is True
    assert reply["protocol"] == 1
    assert reply["pid"] == agent.process.pid
    assert isinstance(reply["agent_version"], str)


def test_workers_run_as_batch_tasks(agent: AgentProcess, code_dir: Path) -> None:
    """A woken worker must not preempt the daemon (SCHED_BATCH), in both modes."""
    write(
        code_dir,
        "handler.py",
        "import os\n\ndef handler(event, context):\n    return os.sched_getscheduler(0)\n",
    )
    agent.init()
    assert agent.exec()["output"] == os.SCHED_BATCH


def test_exec_returns_the_handler_output(agent: AgentProcess, code_dir: Path) -> None:
    write(code_dir, "handler.py", HELLO)
    agent.init()
    reply = agent.exec({"a": [1, "ü"]})
    assert reply["ok"] is True
    assert reply["error"] is None
    assert reply["output"]["echo"] == {"a": [1, "ü"]}
    assert reply["duration_ms"] >= 0
    assert reply["stdout"] == ""
    assert reply["stderr"] == ""


def test_async_handler_is_awaited(agent: AgentProcess, code_dir: Path) -> None:
    write(code_dir, "handler.py", "async def handler(event, context):\n    return event * 2\n")
    agent.init()
    assert agent.exec(21)["output"] == 42


def test_exception_reports_type_message_and_user_frames_only(
    agent: AgentProcess, code_dir: Path
) -> None:
    write(
        code_dir,
        "handler.py",
        "def inner(x):\n    raise ValueError(f'bad {x}')\n\n"
        "def handler(event, context):\n    return inner(event)\n",
    )
    agent.init()
    reply = agent.exec(7)
    assert reply["ok"] is True
    assert reply["output"] is None
    error = reply["error"]
    assert error["type"] == "ValueError"
    assert error["message"] == "bad 7"
    assert len(error["stack"]) == 2
    assert "in handler" in error["stack"][0]
    assert "in inner" in error["stack"][1]
    assert not any("bootstrap" in line for line in error["stack"])


def test_missing_handler_function(agent: AgentProcess, code_dir: Path) -> None:
    write(code_dir, "handler.py", "def other(event, context):\n    return 1\n")
    assert agent.init()["ok"] is True
    for _ in range(2):  # reported per call; the worker stays alive
        assert agent.exec()["error"]["type"] == "Runtime.HandlerNotFound"


def test_import_error_is_reported_per_exec(agent: AgentProcess, code_dir: Path) -> None:
    write(code_dir, "handler.py", "import no_such_module_nova\n")
    assert agent.init()["ok"] is True
    for _ in range(2):
        error = agent.exec()["error"]
        assert error["type"] == "Runtime.ImportModuleError"
        assert "no_such_module_nova" in error["message"]


def test_unserialisable_result(agent: AgentProcess, code_dir: Path) -> None:
    write(code_dir, "handler.py", "def handler(event, context):\n    return {1, 2}\n")
    agent.init()
    assert agent.exec()["error"]["type"] == "Runtime.SerializationError"
    assert agent.exec()["error"]["type"] == "Runtime.SerializationError"


def test_prints_are_captured_per_invocation_and_do_not_corrupt_output(
    agent: AgentProcess, code_dir: Path
) -> None:
    write(
        code_dir,
        "handler.py",
        "import os, sys\n"
        "def handler(event, context):\n"
        '    print(\'{"id": "forged"}\')\n'
        "    print('to stderr', file=sys.stderr)\n"
        "    os.write(1, b'c-level\\n')\n"
        "    os.system('echo from-child')\n"
        "    return event\n",
    )
    agent.init()
    for n in range(2):
        reply = agent.exec(n)
        assert reply["output"] == n
        assert reply["stdout"] == '{"id": "forged"}\nc-level\nfrom-child\n'
        assert reply["stderr"] == "to stderr\n"


def test_captured_output_keeps_the_tail(agent: AgentProcess, code_dir: Path) -> None:
    write(
        code_dir,
        "handler.py",
        "def handler(event, context):\n    print('x' * 100_000 + 'END')\n    return 1\n",
    )
    agent.init()
    stdout = agent.exec()["stdout"]
    assert stdout.endswith("END\n")
    assert stdout.startswith("[nova: ")
    assert len(stdout) < 64 * 1024 + 100


def test_nova_environment_and_context(agent: AgentProcess, code_dir: Path) -> None:
    write(
        code_dir,
        "handler.py",
        "import os\n"
        "def handler(event, context):\n"
        "    env = {k: v for k, v in os.environ.items()}\n"
        "    return {'env': env, 'remaining': context.get_remaining_time_in_millis(),\n"
        "            'request_id': context.aws_request_id, 'name': context.function_name,\n"
        "            'arn': context.invoked_function_arn, 'mb': context.memory_limit_in_mb}\n",
    )
    agent.init(env={"USER_VAR": "u", "NOVA_FUNCTION_NAME": "spoofed"})
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    output = agent.exec(None, id="req-1", trace_parent=trace)["output"]
    env = output["env"]
    assert env["NOVA_REQUEST_ID"] == "req-1"
    assert env["NOVA_FUNCTION_NAME"] == "fn"
    assert env["NOVA_FUNCTION_VERSION"] == "3"
    assert env["NOVA_MEMORY_LIMIT_MB"] == "128"
    assert env["NOVA_TIMEOUT_S"] == "5"
    assert env["NOVA_RUNTIME"] == "python"
    assert env["NOVA_CODE_DIR"] == str(agent.code_dir)
    assert env["NOVA_MODE"] == "persistent"
    assert env["NOVA_TRACE_PARENT"] == trace
    amzn = "Root=1-0af76519-16cd43dd8448eb211c80319c;Parent=b7ad6b7169203331;Sampled=1"
    assert env["_X_AMZN_TRACE_ID"] == amzn
    assert env["USER_VAR"] == "u"
    assert env["PYTHONPATH"] == str(agent.code_dir)
    assert env["HOME"] == str(agent.tmp_dir)
    assert "PYTHONDONTWRITEBYTECODE" not in env  # nothing else of the agent's environment
    assert 0 < output["remaining"] <= 5000
    assert output["request_id"] == "req-1"
    assert (output["name"], output["arn"], output["mb"]) == ("fn", "arn:nova:function:fn", 128)
    second = agent.exec(None, id="req-2")["output"]["env"]
    assert second["NOVA_REQUEST_ID"] == "req-2"
    assert "NOVA_TRACE_PARENT" not in second
    assert "_X_AMZN_TRACE_ID" not in second


@pytest.mark.parametrize("mode", ["persistent", "process"])
def test_the_function_sees_request_id_and_the_reply_echoes_the_frame_id(
    agent: AgentProcess, code_dir: Path, mode: str
) -> None:
    """Two calls may share a request id (the client's X-Nova-Request-Id); the frame id the host
    matches replies by is its own."""
    write(
        code_dir,
        "handler.py",
        "import os\n"
        "def handler(event, context):\n"
        "    return [context.aws_request_id, os.environ['NOVA_REQUEST_ID']]\n",
    )
    agent.init(mode=mode)
    reply = agent.exec(None, id="frame-7", request_id="client-id")
    assert reply["id"] == "frame-7"
    assert reply["output"] == ["client-id", "client-id"]


def test_worker_killed_mid_run_then_next_exec_succeeds(agent: AgentProcess, code_dir: Path) -> None:
    write(
        code_dir,
        "handler.py",
        "import os, sys\n"
        "def handler(event, context):\n"
        "    if event == 'kill':\n"
        "        print('last words', file=sys.stderr, flush=True)\n"
        "        os.kill(os.getpid(), 9)\n"
        "    if event == 'exit':\n"
        "        os._exit(3)\n"
        "    return os.getpid()\n",
    )
    agent.init()
    first_pid = agent.exec("ok")["output"]
    killed = agent.exec("kill")
    assert killed["ok"] is True
    assert killed["error"]["type"] == "Runtime.ExitError"
    assert "SIGKILL" in killed["error"]["message"]
    assert "last words" in killed["error"]["message"]
    assert killed["stderr"] == "last words\n"
    second_pid = agent.exec("ok")["output"]
    assert second_pid != first_pid
    exited = agent.exec("exit")["error"]
    assert exited["type"] == "Runtime.ExitError"
    assert "code 3" in exited["message"]
    assert isinstance(agent.exec("ok")["output"], int)


def test_deadline_kills_the_worker_and_reports_timeout(agent: AgentProcess, code_dir: Path) -> None:
    write(
        code_dir,
        "handler.py",
        "import time\ndef handler(event, context):\n    time.sleep(event)\n    return event\n",
    )
    agent.init()
    reply = agent.exec(30, timeout_s=0.3)
    assert reply["error"]["type"] == "Function.Timeout"
    assert agent.exec(0)["output"] == 0


def test_process_mode_runs_a_fresh_process_per_call(agent: AgentProcess, code_dir: Path) -> None:
    write(
        code_dir,
        "handler.py",
        "import os\ndef handler(event, context):\n"
        "    print('out', event)\n    return {'pid': os.getpid(), 'mode': os.environ['NOVA_MODE']}\n",
    )
    agent.init(mode="process")
    first, second = agent.exec(1), agent.exec(2)
    assert first["output"]["mode"] == "process"
    assert first["output"]["pid"] != second["output"]["pid"]
    assert (first["stdout"], second["stdout"]) == ("out 1\n", "out 2\n")
    write(code_dir, "handler.py", "import os\ndef handler(event, context):\n    os._exit(4)\n")
    crashed = agent.exec()
    assert crashed["error"]["type"] == "Runtime.ExitError"
    assert "code 4" in crashed["error"]["message"]


COUNTER = """
import os
calls = 0

def handler(event, context):
    global calls
    calls += 1
    return {"version": %r, "calls": calls, "pid": os.getpid()}
"""


def test_drain_replace_reload_runs_the_new_code_on_fresh_workers(
    agent: AgentProcess, code_dir: Path
) -> None:
    write(code_dir, "handler.py", COUNTER % "old")
    write(code_dir, "stale.py", "")
    agent.init()
    # With two workers (relayed) consecutive calls may land on either: each worker counts its own.
    old_calls: Counter[int] = Counter()
    for _ in range(2):
        before = agent.exec()["output"]
        old_calls[before["pid"]] += 1
        assert (before["version"], before["calls"]) == ("old", old_calls[before["pid"]])

    assert agent.request({"type": MsgType.DRAIN}) == {"type": 3, "id": "m4", "ok": True}
    refused = agent.exec()
    assert refused["ok"] is False
    assert refused["error"]["type"] == "Runtime.Drained"
    # The host replaces the files while no worker runs (the sandboxes' code dir is read-only).
    (code_dir / "stale.py").unlink()
    write(code_dir, "handler.py", "from lib.helper import handler\n")
    write(code_dir, "lib/__init__.py", "")
    write(code_dir, "lib/helper.py", COUNTER % "new")
    reply = agent.request({"type": MsgType.RELOAD, "code_hash": "abc"})
    assert (reply["ok"], reply["code_hash"]) == (True, "abc")

    new_calls: Counter[int] = Counter()
    for _ in range(2):
        after = agent.exec()["output"]
        new_calls[after["pid"]] += 1
        assert after["version"] == "new"
        # Module state starts over: the workers restarted.
        assert after["calls"] == new_calls[after["pid"]]
        assert after["pid"] not in old_calls


def test_drain_lets_the_running_invocation_finish_on_the_old_code(
    agent: AgentProcess, code_dir: Path
) -> None:
    write(
        code_dir,
        "handler.py",
        "import time\ndef handler(event, context):\n    time.sleep(event)\n    return 'old'\n",
    )
    agent.init()
    running = agent.send(agent.exec_message(0.5))
    drain = agent.send({"type": MsgType.DRAIN})
    first = agent.read()  # replies come in the order the work ended
    assert first is not None
    assert (first["id"], first["output"]) == (running, "old")
    assert agent.reply(drain)["ok"] is True
    write(code_dir, "handler.py", "def handler(event, context):\n    return 'new'\n")
    assert agent.request({"type": MsgType.RELOAD, "code_hash": "2"})["ok"] is True
    assert agent.exec(0)["output"] == "new"


def test_reload_alone_restarts_the_workers(agent: AgentProcess, code_dir: Path) -> None:
    write(code_dir, "handler.py", COUNTER % "one")
    agent.init()
    agent.exec()
    assert agent.exec()["output"]["calls"] == 2
    assert agent.request({"type": MsgType.RELOAD, "code_hash": "same"})["ok"] is True
    assert agent.exec()["output"]["calls"] == 1


def test_drain_and_reload_need_init(agent: AgentProcess) -> None:
    for kind in (MsgType.DRAIN, MsgType.RELOAD):
        reply = agent.request({"type": kind, "code_hash": "x"})
        assert reply["ok"] is False
        assert reply["error"]["type"] == "Runtime.NotInitialized"


def test_ping_unknown_type_and_exec_before_init(agent: AgentProcess) -> None:
    assert agent.request({"type": MsgType.PING}) == {"type": 3, "id": "m1", "ok": True}
    early = agent.exec()
    assert early["ok"] is False
    assert early["error"]["type"] == "Runtime.NotInitialized"
    unknown = agent.request({"type": 99})
    assert unknown["ok"] is False
    assert unknown["error"]["type"] == "Runtime.UnknownMessage"
    bad_init = agent.init(concurrency=0)
    assert bad_init["ok"] is False
    assert bad_init["error"]["type"] == "Runtime.InvalidInit"
    assert agent.request({"type": MsgType.PING})["ok"] is True


def test_concurrent_execs_overlap(agent: AgentProcess, code_dir: Path) -> None:
    write(
        code_dir,
        "handler.py",
        "import os, time\ndef handler(event, context):\n    time.sleep(0.3)\n    return os.getpid()\n",
    )
    agent.init(concurrency=2)
    started = time.perf_counter()
    ids = [agent.send(agent.exec_message(n)) for n in range(2)]
    pids = {agent.reply(request_id)["output"] for request_id in ids}
    assert time.perf_counter() - started < 0.55
    assert len(pids) == 2


def test_oversized_frame_is_rejected_without_reading_it(code_dir: Path, tmp_path: Path) -> None:
    agent = AgentProcess(code_dir, tmp_path, max_message_bytes=4096)
    try:
        # Announce 1 GiB and send nothing more: the agent must answer from the header alone.
        agent.sock.sendall(struct.pack(">I", 1 << 30))
        reply = agent.read()
        assert reply is not None
        assert reply["ok"] is False
        assert reply["error"]["type"] == "Runtime.MessageTooLarge"
        assert agent.read() is None  # and close the stream, which cannot be resynchronised
        assert agent.process.wait(5) == 3
    finally:
        agent.close()


def test_stop_exits_zero(agent: AgentProcess, code_dir: Path) -> None:
    write(code_dir, "handler.py", HELLO)
    agent.init(concurrency=2)
    worker_pid = agent.exec()["output"]["pid"]
    assert agent.request({"type": MsgType.STOP})["ok"] is True
    assert agent.process.wait(5) == 0
    assert not Path(f"/proc/{worker_pid}").exists() or _is_zombie(worker_pid)


def test_eof_stops_the_agent(agent: AgentProcess, code_dir: Path) -> None:
    write(code_dir, "handler.py", HELLO)
    agent.init()
    agent.exec()
    agent.sock.shutdown(2)
    assert agent.process.wait(5) == 0


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def test_execs_beyond_concurrency_wait_for_a_free_worker(
    agent: AgentProcess, code_dir: Path
) -> None:
    write(code_dir, "handler.py", "def handler(event, context):\n    return event\n")
    agent.init()
    ids = [agent.send(agent.exec_message(n)) for n in range(20)]
    assert [agent.reply(request_id)["output"] for request_id in ids] == list(range(20))


def test_stop_answers_the_running_exec_first(agent: AgentProcess, code_dir: Path) -> None:
    write(code_dir, "handler.py", "import time\ndef handler(event, context):\n    time.sleep(30)\n")
    assert agent.init(concurrency=2)["direct"] is False
    running = agent.send(agent.exec_message())
    time.sleep(0.2)
    stop = agent.send({"type": MsgType.STOP})
    assert agent.reply(running)["error"]["type"] == "Runtime.Stopped"
    assert agent.reply(stop)["ok"] is True
    assert agent.process.wait(5) == 0


def test_direct_mode_serves_stop_after_the_running_exec(
    agent: AgentProcess, code_dir: Path
) -> None:
    write(
        code_dir,
        "handler.py",
        "import time\ndef handler(event, context):\n    time.sleep(0.5)\n    return 1\n",
    )
    assert agent.init(concurrency=1)["direct"] is True
    running = agent.send(agent.exec_message())
    stop = agent.send({"type": MsgType.STOP})
    assert agent.reply(running)["output"] == 1  # the worker reads frames in order
    assert agent.reply(stop)["ok"] is True
    assert agent.process.wait(5) == 0


def test_process_mode_deadline(agent: AgentProcess, code_dir: Path) -> None:
    write(
        code_dir,
        "handler.py",
        "import time\ndef handler(event, context):\n    print('started', flush=True)\n"
        "    time.sleep(30)\n",
    )
    agent.init(mode="process")
    reply = agent.exec(None, timeout_s=1.0)
    assert reply["error"]["type"] == "Function.Timeout"
    assert reply["stdout"] == "started\n"


def test_results_that_strict_json_peers_reject_are_not_sent(
    agent: AgentProcess, code_dir: Path
) -> None:
    write(
        code_dir,
        "handler.py",
        "def handler(event, context):\n    return float('nan') if event else '\\ud800'\n",
    )
    agent.init()
    for event in (True, False):
        assert agent.exec(event)["error"]["type"] == "Runtime.SerializationError"


def test_failed_init_reports_why_and_allows_another_init(
    agent: AgentProcess, code_dir: Path
) -> None:
    write(code_dir, "handler.py", HELLO)
    failed = agent.init(interpreter="/bin/false")
    assert failed["ok"] is False
    assert failed["error"]["type"] == "Runtime.InitError"
    assert "exited with code 1" in failed["error"]["message"]
    assert agent.init()["ok"] is True
    assert agent.exec(1)["output"]["echo"] == 1


def test_idle_worker_that_dies_is_replaced(agent: AgentProcess, code_dir: Path) -> None:
    write(
        code_dir,
        "handler.py",
        "import os, threading\n"
        "flag = os.path.join(os.environ['TMPDIR'], 'died-once')\n"
        "if not os.path.exists(flag):\n"
        "    open(flag, 'w').close()\n"
        "    threading.Timer(0.1, os._exit, (1,)).start()\n"
        "def handler(event, context):\n    return 'alive'\n",
    )
    agent.init()
    time.sleep(0.5)
    assert agent.exec()["output"] == "alive"
