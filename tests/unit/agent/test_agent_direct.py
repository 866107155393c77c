"""Direct mode: the one Python worker reads Exec and Ping frames itself; the agent answers the
rest after the worker hands the connection back, and answers for a worker that died."""

from __future__ import annotations

import os
import signal
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nova.agent.protocol import MsgType

from .conftest import AgentProcess, write

PID = "import os\ndef handler(event, context):\n    return os.getpid()\n"


@pytest.fixture
def worker(agent: AgentProcess, code_dir: Path) -> int:
    """Init a direct-mode agent on a handler that returns its pid; the worker's pid."""
    write(code_dir, "handler.py", PID)
    assert agent.init()["direct"] is True
    pid: int = agent.exec()["output"]
    return pid


def test_frames_the_worker_does_not_serve_are_answered_by_the_agent(
    agent: AgentProcess, worker: int
) -> None:
    unknown = agent.request({"type": 99})
    bad_deadline = agent.exec(deadline_ms="soon")
    long_id = agent.request(agent.exec_message(id="x" * 2000))
    not_json = agent.send_raw(b"{not json")

    assert unknown["error"]["type"] == "Runtime.UnknownMessage"
    assert bad_deadline["error"]["type"] == "Runtime.InvalidMessage"
    assert "deadline_ms" in bad_deadline["error"]["message"]
    assert long_id["error"]["type"] == "Runtime.InvalidMessage"
    assert not_json["ok"] is False
    assert not_json["error"]["type"] == "Runtime.InvalidMessage"
    after = agent.exec()
    assert after["error"] is None
    assert after["output"] != worker  # each handback ends the worker; a fresh one serves on


@pytest.fixture
def small_agent(code_dir: Path, tmp_path: Path) -> Iterator[AgentProcess]:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    process = AgentProcess(code_dir, scratch, 4096)
    yield process
    process.close()


@pytest.mark.parametrize("concurrency", [1, 2], ids=["direct", "relayed"])
def test_a_response_over_the_message_limit_is_an_error(
    small_agent: AgentProcess, code_dir: Path, concurrency: int
) -> None:
    write(code_dir, "handler.py", "def handler(event, context):\n    return 'x' * event\n")
    assert small_agent.init(concurrency=concurrency)["ok"]

    too_large = small_agent.exec(10_000)
    fits = small_agent.exec(100)

    assert too_large["output"] is None
    assert too_large["error"]["type"] == "Runtime.ResponseTooLarge"
    assert "4096-byte message limit" in too_large["error"]["message"]
    assert fits["output"] == "x" * 100


def test_a_worker_killed_inside_a_frame_ends_the_connection(
    agent: AgentProcess, worker: int
) -> None:
    agent.sock.sendall(struct.pack(">I", 1000) + b'{"type":2')  # a frame cut short
    time.sleep(0.3)  # the worker is now blocked reading the rest of the body

    os.kill(worker, signal.SIGKILL)

    # The stream has lost its frame boundaries: the agent gives it up (the host replaces the
    # instance) rather than guess where the next frame starts.
    assert agent.process.wait(5) == 4
    assert agent.read() is None


def test_a_handler_that_kills_its_worker_is_answered_and_replaced(
    agent: AgentProcess, code_dir: Path
) -> None:
    write(
        code_dir,
        "handler.py",
        "import os, signal\ndef handler(event, context):\n"
        "    if event == 'die':\n        print('bye')\n        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return os.getpid()\n",
    )
    assert agent.init()["direct"] is True
    first = agent.exec()["output"]

    died = agent.exec("die")
    after = agent.exec()

    assert died["error"]["type"] == "Runtime.ExitError"
    assert "killed by SIGKILL" in died["error"]["message"]
    assert died["stdout"] == "bye\n"
    assert died["duration_ms"] >= 0
    assert after["error"] is None
    assert after["output"] != first
    assert agent.request({"type": MsgType.PING})["ok"] is True


def test_a_state_file_the_handler_scribbled_over_ends_the_connection_cleanly(
    agent: AgentProcess, code_dir: Path
) -> None:
    write(
        code_dir,
        "handler.py",
        "import os, struct\n"
        "def handler(event, context):\n"
        "    for fd in os.listdir('/proc/self/fd'):\n"
        "        try:\n"
        "            target = os.readlink(f'/proc/self/fd/{fd}')\n"
        "        except OSError:\n"
        "            continue\n"
        "        if 'nova-state' in target:\n"
        "            os.pwrite(int(fd), b'{not json', 16)\n"
        "            os.pwrite(int(fd), struct.pack('<BxxxId', 2, 9, 0.0), 0)\n"
        "    os.kill(os.getpid(), 9)\n",
    )
    assert agent.init()["direct"] is True
    agent.send(agent.exec_message())

    assert agent.process.wait(5) == 4  # the worker-lost exit, not a traceback
    assert agent.read() is None
