"""The Exec frame the host builds is what the agent parses, and the agent never loads orjson."""

from __future__ import annotations

import json
import subprocess
import sys

from nova.agent.invocation import parse_exec
from nova.agent.protocol import MsgType, decode_body, exec_body


def test_exec_body_is_the_documented_frame() -> None:
    event = b'{"name": "\\u00e9", "list": [1, 2]}'
    body = exec_body("7", 'req "1"', 1_700_000_000_000, "00-abc-def-01", event)
    message = decode_body(body)
    assert message == {
        "type": MsgType.EXEC,
        "id": "7",
        "request_id": 'req "1"',
        "deadline_ms": 1_700_000_000_000,
        "trace_parent": "00-abc-def-01",
        "event": json.loads(event),
    }
    parsed = parse_exec(message, body, 1.0)
    assert (parsed.request_id, parsed.trace_parent) == ('req "1"', "00-abc-def-01")


def test_exec_body_without_a_trace_parent() -> None:
    message = decode_body(exec_body("1", "r", 5, None, b"null"))
    assert message["trace_parent"] is None
    assert message["event"] is None


def test_importing_the_protocol_does_not_load_orjson() -> None:
    code = "import sys, nova.agent.protocol; print('orjson' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
