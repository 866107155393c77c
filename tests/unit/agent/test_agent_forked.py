"""Workers forked from the agent (same interpreter, at Init) behave like spawned ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from nova.agent.protocol import MsgType
from tests.unit.agent.conftest import AgentProcess, write

PROBE = """
import os, sys
def handler(event, context):
    if event == "die":
        os._exit(3)
    try:
        import nova  # the agent's package must not leak into the worker
        leaked = True
    except ImportError:
        leaked = False
    print("hello from", context.function_name)
    import stat
    sockets = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            sockets += stat.S_ISSOCK(os.fstat(int(fd)).st_mode)
        except OSError:
            pass
    return {
        "pid": os.getpid(), "ppid": os.getppid(), "sid": os.getsid(0), "leaked": leaked,
        "cwd": os.getcwd(), "path0": sys.path[0], "site": any("-packages" in p for p in sys.path),
        "env": {k: v for k, v in os.environ.items() if k in ("NOVA_FUNCTION_NAME", "GREETING", "PYTHONPATH")},
        "sockets": sockets, "argv": sys.argv, "orig_argv": sys.orig_argv,
    }
"""


@pytest.mark.parametrize("concurrency", [1, 2], ids=["direct", "relayed"])
def test_forked_worker_looks_like_a_spawned_one(
    same_python_agent: AgentProcess, code_dir: Path, concurrency: int
) -> None:
    write(code_dir, "handler.py", PROBE)
    init = same_python_agent.init(env={"GREETING": "hi"}, concurrency=concurrency)
    assert init["ok"], init
    assert init["direct"] is (concurrency == 1)
    reply = same_python_agent.exec("probe")
    assert reply["error"] is None, reply
    out = reply["output"]
    assert out["ppid"] == same_python_agent.process.pid
    assert "nova.agent" in out["orig_argv"]  # the agent's command line: proof it was forked
    assert out["sid"] == out["pid"]  # its own session, as start_new_session gives
    assert out["leaked"] is False
    assert out["path0"] == str(code_dir)
    assert out["site"] is False  # no site-packages, as in a spawned worker
    assert out["env"]["NOVA_FUNCTION_NAME"] == "fn"
    assert out["env"]["GREETING"] == "hi"
    # Only a direct-mode worker holds the host connection (it reads its own Exec frames).
    assert out["sockets"] == (1 if concurrency == 1 else 0)
    assert "hello from fn" in reply["stdout"]


def test_a_forked_worker_that_dies_is_replaced(
    same_python_agent: AgentProcess, code_dir: Path
) -> None:
    write(code_dir, "handler.py", PROBE)
    assert same_python_agent.init()["ok"]
    first = same_python_agent.exec("probe")["output"]["pid"]
    died = same_python_agent.exec("die")
    assert died["error"]["type"] == "Runtime.ExitError"
    assert "code 3" in died["error"]["message"]
    after = same_python_agent.exec("probe")
    assert after["error"] is None
    assert after["output"]["pid"] != first


@pytest.mark.parametrize("concurrency", [1, 2], ids=["direct", "relayed"])
def test_a_reloaded_forked_worker_has_none_of_the_old_code_s_modules(
    same_python_agent: AgentProcess, code_dir: Path, concurrency: int
) -> None:
    write(code_dir, "old_helper.py", "VALUE = 'old'\n")
    write(
        code_dir,
        "handler.py",
        "import os, old_helper\ndef handler(event, context):\n"
        "    return {'value': old_helper.VALUE, 'pid': os.getpid(), 'ppid': os.getppid()}\n",
    )
    assert same_python_agent.init(concurrency=concurrency)["ok"]
    before = same_python_agent.exec()["output"]
    assert before["value"] == "old"
    assert same_python_agent.request({"type": MsgType.DRAIN})["ok"]
    (code_dir / "old_helper.py").unlink()
    write(
        code_dir,
        "handler.py",
        "import os, sys\ndef handler(event, context):\n"
        "    return {'old': 'old_helper' in sys.modules, 'forked': sys.flags.no_site}\n",
    )
    assert same_python_agent.request({"type": MsgType.RELOAD, "code_hash": "2"})["ok"]
    after = same_python_agent.exec()["output"]
    assert after == {"old": False, "forked": 1}  # forked again, from the agent's -S
