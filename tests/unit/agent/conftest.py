"""Run the real agent as a subprocess on one end of a socketpair, as a sandbox backend does."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import nova
from nova.agent.protocol import MsgType, encode_message, read_frame

SRC_DIR = str(Path(nova.__file__).resolve().parent.parent)
PYTHON = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
NODE = shutil.which("node")
REPLY_TIMEOUT_S = 10.0

needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed on this host")


class AgentProcess:
    """The host's view: send frames, wait for the reply with a given id."""

    def __init__(
        self,
        code_dir: Path,
        tmp_dir: Path,
        max_message_bytes: int | None,
        agent_python: str = sys.executable,
        concurrency: int = 1,  # Init's default: 1 runs Python in direct mode, more relays
    ) -> None:
        self.code_dir = code_dir
        self.concurrency = concurrency
        self.tmp_dir = tmp_dir
        self.sock, agent_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        argv = [agent_python, "-S", "-m", "nova.agent", "--fd", str(agent_end.fileno())]
        if max_message_bytes is not None:
            argv += ["--max-message-bytes", str(max_message_bytes)]
        self.process = subprocess.Popen(
            argv,
            pass_fds=(agent_end.fileno(),),
            env={"PYTHONPATH": SRC_DIR, "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            start_new_session=True,
        )
        agent_end.close()
        self.sock.settimeout(REPLY_TIMEOUT_S)
        self._reader = self.sock.makefile("rb")
        self._ids = itertools.count(1)
        self._stash: dict[object, dict[str, Any]] = {}

    def send(self, message: dict[str, Any]) -> object:
        message.setdefault("id", f"m{next(self._ids)}")
        self.sock.sendall(encode_message(message))
        return message["id"]

    def send_raw(self, body: bytes) -> dict[str, Any]:
        """Send a frame whose body need not be valid JSON; the reply carries no id to match."""
        self.sock.sendall(struct.pack(">I", len(body)) + body)
        reply = self.read()
        assert reply is not None, "the agent closed the connection"
        return reply

    def read(self) -> dict[str, Any] | None:
        body = read_frame(self._reader)
        return None if body is None else json.loads(body)

    def reply(self, request_id: object) -> dict[str, Any]:
        while request_id not in self._stash:
            message = self.read()
            if message is None:
                raise AssertionError(f"agent closed the connection before replying to {request_id}")
            self._stash[message.get("id")] = message
        return self._stash.pop(request_id)

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        return self.reply(self.send(message))

    def init(self, handler: str = "handler.handler", **fields: Any) -> dict[str, Any]:
        runtime = fields.pop("runtime", "python")
        message = {
            "type": MsgType.INIT,
            "protocol": 1,
            "runtime": runtime,
            "handler": handler,
            "mode": "persistent",
            "code_dir": str(self.code_dir),
            "tmp_dir": str(self.tmp_dir),
            "interpreter": PYTHON if runtime == "python" else NODE,
            "env": {},
            "function_name": "fn",
            "function_version": "3",
            "memory_mb": 128,
            "timeout_s": 5,
            "concurrency": self.concurrency,
        }
        message.update(fields)
        return self.request(message)

    def exec_message(
        self, event: Any = None, timeout_s: float = 5.0, **fields: Any
    ) -> dict[str, Any]:
        message = {
            "type": MsgType.EXEC,
            "event": event,
            "deadline_ms": int((time.time() + timeout_s) * 1000),
            "trace_parent": None,
        }
        message.update(fields)
        return message

    def exec(self, event: Any = None, **fields: Any) -> dict[str, Any]:
        return self.request(self.exec_message(event, **fields))

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, 9)
            self.process.wait()
        self._reader.close()
        self.sock.close()


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    path = tmp_path / "code"
    path.mkdir()
    return path


@pytest.fixture
def agent(code_dir: Path, tmp_path: Path) -> Iterator[AgentProcess]:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    process = AgentProcess(code_dir, scratch, None)
    yield process
    process.close()


@pytest.fixture(params=[1, 2], ids=["direct", "relayed"])
def two_mode_agent(
    request: pytest.FixtureRequest, code_dir: Path, tmp_path: Path
) -> Iterator[AgentProcess]:
    """An agent whose persistent functions run in direct mode (one worker reads the connection
    itself) and, in a second run, relayed (two workers fed by the agent)."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    process = AgentProcess(code_dir, scratch, None, concurrency=request.param)
    yield process
    process.close()


@pytest.fixture
def same_python_agent(code_dir: Path, tmp_path: Path) -> Iterator[AgentProcess]:
    """An agent running on the function's own interpreter: it forks its Python workers."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    process = AgentProcess(code_dir, scratch, None, agent_python=PYTHON)
    yield process
    process.close()


def write(code_dir: Path, name: str, source: str) -> None:
    target = code_dir / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(source)
