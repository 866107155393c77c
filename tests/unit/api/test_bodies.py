"""Request bodies are refused as soon as they pass their limit, not after being stored."""

from __future__ import annotations

import pytest
from starlette.requests import Request
from starlette.types import Message

from nova.api.bodies import read_body, read_multipart
from nova.api.schemas import FunctionCreate
from nova.core.errors import PayloadTooLarge

CHUNK = 64 * 1024
BOUNDARY = "nova-test-boundary"


def _request(
    chunks: list[bytes], content_type: str, declared: int | None = None
) -> tuple[Request, list[int]]:
    """A request delivering ``chunks`` one message each; the list counts messages taken."""
    taken = [0]

    async def receive() -> Message:
        index = taken[0]
        taken[0] += 1
        return {"type": "http.request", "body": chunks[index], "more_body": index + 1 < len(chunks)}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/functions",
        "headers": [(b"content-type", content_type.encode())]
        + ([(b"content-length", str(declared).encode())] if declared is not None else []),
    }
    return Request(scope, receive), taken


async def test_a_multipart_upload_stops_being_read_past_the_limit() -> None:
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="meta"\r\n\r\n{{}}\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="zip"; filename="c.zip"\r\n'
        "Content-Type: application/zip\r\n\r\n"
    ).encode()
    chunks = [head] + [b"\0" * CHUNK] * 100  # 6.4 MB of file part
    request, taken = _request(chunks, f"multipart/form-data; boundary={BOUNDARY}")
    with pytest.raises(PayloadTooLarge, match=r"code\.max_upload_bytes"):
        await read_multipart(request, FunctionCreate, 4096)
    assert taken[0] < 30  # the limit plus 1 MiB of slack for the meta part, not the 6.4 MB


async def test_a_body_stops_being_read_past_the_limit() -> None:
    request, taken = _request([b"x" * CHUNK] * 10, "application/json")
    with pytest.raises(PayloadTooLarge, match="the body is larger than 100000 bytes"):
        await read_body(request, 100_000, "the body")
    assert taken[0] == 2


async def test_a_declared_length_past_the_limit_is_refused_before_reading() -> None:
    request, taken = _request([b"{}"], "application/json", declared=100_001)
    with pytest.raises(PayloadTooLarge):
        await read_body(request, 100_000, "the body")
    assert taken[0] == 0
