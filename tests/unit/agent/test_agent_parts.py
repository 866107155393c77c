"""The agent's pure pieces: Init validation, request lines, captures, CLI, frames."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from nova.agent import forked_worker
from nova.agent.__main__ import UsageError, parse_args
from nova.agent.capture import CAPTURE_LIMIT, TailBuffer
from nova.agent.errors import AgentError, ErrorType
from nova.agent.invocation import parse_exec
from nova.agent.protocol import (
    MessageTooLarge,
    ProtocolError,
    decode_body,
    encode_message,
    init_message,
    read_frame,
)
from nova.agent.spec import parse_init
from nova.core.models import ExecutionMode, FunctionConfig


def _init(tmp_path: Path, **fields: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": 1,
        "runtime": "python",
        "handler": "handler.handler",
        "code_dir": str(tmp_path),
        "function_name": "fn",
        "interpreter": "/bin/sh",
    }
    message.update(fields)
    return message


def test_init_defaults(tmp_path: Path) -> None:
    spec = parse_init(_init(tmp_path), {"PATH": "/usr/bin:/bin"})
    assert (spec.mode, spec.concurrency, spec.tmp_dir, spec.memory_mb) == (
        "persistent",
        1,
        "/tmp",
        128,
    )


def test_init_message_is_what_the_agent_accepts(tmp_path: Path) -> None:
    config = FunctionConfig(
        name="fn",
        runtime="python",
        handler="handler.handler",
        memory_mb=64,
        timeout_s=3.0,
        env={"A": "configured"},
        mode=ExecutionMode.PROCESS,
        instance_concurrency=2,
    )
    deployment = SimpleNamespace(
        config=config, version="4", interpreter="/bin/sh", agent_runtime=None
    )
    env = {"A": "resolved"}  # what the instance gets, not the configured value
    message = init_message(deployment, str(tmp_path), str(tmp_path), env)
    env["A"] = "changed"  # the frame keeps its own copy
    spec = parse_init(message, {})
    assert "resolved" not in repr(spec)  # env may hold secrets: names only
    assert (spec.function_name, spec.function_version, spec.mode, spec.env) == (
        "fn",
        "4",
        "process",
        {"A": "resolved"},
    )
    assert (spec.memory_mb, spec.timeout_s, spec.concurrency, spec.tmp_dir) == (
        64,
        3.0,
        2,
        str(tmp_path),
    )


@pytest.mark.parametrize(
    "fields",
    [
        {"runtime": "cobol"},
        {"handler": "../evil.handler"},
        {"handler": "nodot"},
        {"mode": "threads"},
        {"code_dir": "relative"},
        {"concurrency": 0},
        {"concurrency": True},
        {"timeout_s": "5"},
        {"env": {"A": 1}},
        {"interpreter": "python3"},
        {"protocol": 2},
    ],
)
def test_init_rejects(tmp_path: Path, fields: dict[str, Any]) -> None:
    with pytest.raises(AgentError) as caught:
        parse_init(_init(tmp_path, **fields), {})
    assert caught.value.kind is ErrorType.INVALID_INIT


def test_interpreter_is_found_on_path(tmp_path: Path) -> None:
    message = _init(tmp_path)
    del message["interpreter"]
    binary = tmp_path / "python3"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    assert parse_init(message, {"PATH": str(tmp_path)}).interpreter == str(binary)


def test_worker_request_splices_env_into_the_exec_body() -> None:
    body = b'{"type":2,"id":"r1","deadline_ms":5,"trace_parent":"t",\n"event":{"a":\n1}}'
    job = parse_exec(json.loads(body), body, 30)
    line = job.worker_request()
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    request = json.loads(line)
    assert request["event"] == {"a": 1}
    assert request["env"] == {"NOVA_REQUEST_ID": "r1", "NOVA_TRACE_PARENT": "t"}
    assert job.reply_prefix() == b'{"id":"r1",'


def test_exec_validation() -> None:
    with pytest.raises(AgentError):
        parse_exec({"type": 2, "deadline_ms": "soon"}, b"{}", 1)
    with pytest.raises(AgentError):
        parse_exec({"type": 2, "trace_parent": 5}, b"{}", 1)


def test_tail_buffer_keeps_the_last_bytes() -> None:
    tail = TailBuffer()
    for _ in range(10):
        tail.feed(b"x" * 50_000)
    tail.feed(b"END")
    text = tail.text()
    assert text.endswith("END")
    assert text.startswith(f"[nova: {500_003 - CAPTURE_LIMIT} earlier bytes truncated]")


def test_cli_arguments() -> None:
    assert parse_args(["--fd", "3"]) == (3, 8 * 1024 * 1024)
    assert parse_args(["--fd=4", "--max-message-bytes", "4096"]) == (4, 4096)
    for bad in ([], ["--fd"], ["--fd", "x"], ["--port", "1"]):
        with pytest.raises(UsageError):
            parse_args(bad)


def test_frames_round_trip_and_limits() -> None:
    frame = encode_message({"type": 3, "text": "\ud800 lone"})  # no UTF-8 form: replaced
    body = read_frame(io.BytesIO(frame))
    assert body is not None
    assert json.loads(body)["text"].endswith(" lone")
    with pytest.raises(MessageTooLarge):
        read_frame(io.BytesIO(b"\x00\x01\x00\x00"), max_message_bytes=10)
    with pytest.raises(ProtocolError):
        read_frame(io.BytesIO(b"\x00\x00\x00\x09{}"))
    with pytest.raises(ProtocolError):
        decode_body(b'{"type": true}')


def test_a_bootstrap_compiled_ahead_runs_as_main_from_its_code_object(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "boot.py"
    script.write_text("import sys\nsys.modules['__main__'].seen = (__name__, __file__, 'ahead')\n")
    forked_worker.compile_ahead(str(script))
    script.write_text("raise SystemExit('the file was compiled again')\n")
    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])

    forked_worker._run_as_main(str(script))

    assert sys.modules["__main__"].seen == ("__main__", str(script), "ahead")
