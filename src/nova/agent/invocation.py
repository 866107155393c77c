"""One Exec request as the runners see it, and the request line a worker reads for it.

The worker line reuses the Exec frame body as received (the event is never re-encoded): the body
is a JSON object, so appending ``"env":{...}`` before its closing brace keeps it one.
"""

from __future__ import annotations

import json
import time

from nova.agent.environment import invocation_variables, invocation_variables_json
from nova.agent.errors import AgentError, ErrorType

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:  # typing is only needed by the type checker; importing it costs start-up time
    from typing import Any


class Invocation:
    """``frame_id`` matches the reply to the Exec; ``request_id`` is what the function sees."""

    __slots__ = (
        "body",
        "deadline_ms",
        "frame_id",
        "message",
        "request_id",
        "started",
        "trace_parent",
    )

    def __init__(
        self,
        message: dict[str, Any],
        body: bytes,
        frame_id: object,
        request_id: object,
        deadline_ms: float,
        trace_parent: str | None,
    ) -> None:
        self.message = message
        self.body = body
        self.frame_id = frame_id
        self.request_id = request_id
        self.deadline_ms = deadline_ms
        self.trace_parent = trace_parent
        self.started = time.perf_counter()  # reset when a worker takes it

    @property
    def event(self) -> Any:
        return self.message.get("event")

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def environment(self) -> dict[str, str]:
        return invocation_variables(self.request_id, self.trace_parent)

    def worker_request(self) -> bytes:
        """The Exec body plus the per-call environment, as one newline-terminated JSON line."""
        body = self.body.rstrip()
        if b"\n" in body:
            # Valid JSON holds a raw newline only as whitespace between tokens (strings escape
            # it), so a space is an exact substitute and the line stays one line.
            body = body.replace(b"\n", b" ")
        env = invocation_variables_json(self.request_id, self.trace_parent)
        return b"".join((memoryview(body)[:-1], b',"env":', env, b"}\n"))

    def reply_prefix(self) -> bytes:
        """How a worker's result line for this invocation starts: ``{"id":<id>,``."""
        return b'{"id":' + json.dumps(self.frame_id, ensure_ascii=False).encode() + b","


def parse_exec(message: dict[str, Any], body: bytes, timeout_s: float) -> Invocation:
    deadline_ms = message.get("deadline_ms")
    if deadline_ms is None:
        deadline_ms = time.time() * 1000 + timeout_s * 1000
    elif isinstance(deadline_ms, bool) or not isinstance(deadline_ms, int | float):
        raise AgentError(ErrorType.INVALID_MESSAGE, "Exec: deadline_ms must be epoch milliseconds")
    trace_parent = message.get("trace_parent")
    if trace_parent is not None and not isinstance(trace_parent, str):
        raise AgentError(ErrorType.INVALID_MESSAGE, "Exec: trace_parent must be a string or null")
    frame_id = message.get("id")
    request_id = message.get("request_id", frame_id)
    return Invocation(message, body, frame_id, request_id, float(deadline_ms), trace_parent)
