"""The agent's half of the host connection: every reply frame goes out through here.

Several threads answer Execs at once, so each frame is written whole under one lock. A worker's
result line is spliced into the Resp frame as bytes (the output is never decoded and re-encoded
on the warm path); anything that does not look like a line for the expected request falls back
to a parse, and a line that fails that too is refused.
"""

from __future__ import annotations

import json
import os
import threading

from nova.agent.diagnostics import report
from nova.agent.errors import AgentError, ErrorType, error_object
from nova.agent.invocation import Invocation
from nova.agent.protocol import HEADER, MessageTooLarge, MsgType, encode_message

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:  # typing is only needed by the type checker; importing it costs start-up time
    from typing import Any

_RESULT_HEAD = b'{"type":%d,"ok":true,"duration_ms":%%.3f,' % MsgType.RESP


class Channel:
    def __init__(self, fd: int, max_message_bytes: int) -> None:
        self._fd = fd
        self._lock = threading.Lock()
        self.max_message_bytes = max_message_bytes
        self.broken = False

    def reply(self, request_id: object, **fields: Any) -> None:
        """A control reply (Init, Ping, Drain, Reload, Stop): ``ok: true`` plus ``fields``."""
        message = {"type": MsgType.RESP, "id": request_id, "ok": True, **fields}
        self._write(encode_message(message, self.max_message_bytes))

    def refuse(self, request_id: object, error: AgentError) -> None:
        message = {"type": MsgType.RESP, "id": request_id, "ok": False, "error": error.to_wire()}
        self._write(encode_message(message, self.max_message_bytes))

    def result(
        self,
        job: Invocation,
        output: Any,
        error: dict[str, Any] | None,
        stdout: str = "",
        stderr: str = "",
    ) -> None:
        """An Exec reply built from values (the slow paths: failures, process mode)."""
        message = {
            "type": MsgType.RESP,
            "id": job.frame_id,
            "ok": True,
            "output": None if error is not None else output,
            "error": error,
            "stdout": stdout,
            "stderr": stderr,
            "duration_ms": round(job.elapsed_ms(), 3),
        }
        try:
            frame = encode_message(message, self.max_message_bytes)
        except MessageTooLarge as exc:
            message["output"] = None
            message["error"] = error_object(ErrorType.RESPONSE_TOO_LARGE, _too_large(exc, self))
            frame = encode_message(message, self.max_message_bytes)
        self._write(frame)

    def failure(
        self, job: Invocation, kind: ErrorType, message: str, stdout: str = "", stderr: str = ""
    ) -> None:
        self.result(job, None, error_object(kind, message), stdout, stderr)

    def result_line(self, job: Invocation, line: bytes) -> bool:
        """Answer ``job`` with a worker's result line; False if the line is not for ``job``."""
        duration_ms = job.elapsed_ms()
        # Escaped surrogates (\udXXX, from Node's JSON.stringify) are valid JSON that strict
        # peers still reject; the slow path re-encodes them away.
        if line.startswith(job.reply_prefix()) and line.endswith(b"}") and b"\\ud" not in line:
            head = _RESULT_HEAD % duration_ms
            size = len(head) + len(line) - 1
            if size <= self.max_message_bytes:
                self._write(b"".join((HEADER.pack(size), head, memoryview(line)[1:])))
                return True
        return self._parsed_result_line(job, line)

    def _parsed_result_line(self, job: Invocation, line: bytes) -> bool:
        try:
            result = json.loads(line)
        except ValueError:
            return False
        if not isinstance(result, dict) or result.get("id") != job.frame_id:
            return False
        error = result.get("error")
        self.result(
            job,
            result.get("output"),
            error if isinstance(error, dict) else None,
            str(result.get("stdout", "")),
            str(result.get("stderr", "")),
        )
        return True

    def _write(self, frame: bytes) -> None:
        view = memoryview(frame)
        with self._lock:
            if self.broken:
                return
            try:
                while view:
                    view = view[os.write(self._fd, view) :]
            except OSError as exc:
                # The host is gone; the read loop sees the same and shuts the agent down.
                self.broken = True
                report(f"cannot write to the host: {exc}")


def _too_large(exc: MessageTooLarge, channel: Channel) -> str:
    return (
        f"the function's response ({exc.size} bytes with its output) exceeds the "
        f"{channel.max_message_bytes}-byte message limit"
    )
