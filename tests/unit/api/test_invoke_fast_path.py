"""The bare ASGI invoke path answers every failure with the JSON error body, never plain text."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any, cast

import orjson
import pytest
from starlette.types import Message

from nova.api.context import Services
from nova.api.invoke import InvokeFastPath
from nova.config import Settings
from nova.core.errors import FunctionNotFound


class _FailingExecutor:
    def __init__(self, error: Exception) -> None:
        self.error = error

    async def invoke(self, name: str, event: bytes, **_: Any) -> None:
        raise self.error


async def _invoke(error: Exception) -> tuple[int, dict[bytes, bytes], dict[str, Any]]:
    services = cast(
        Services, SimpleNamespace(settings=Settings(), executor=_FailingExecutor(error))
    )

    async def unrouted(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the invoke path must not fall through")

    app = InvokeFastPath(unrouted, lambda: services)
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/functions/fn/invoke",
        "query_string": b"",
        "headers": [],
    }
    await app(scope, receive, send)
    start, body = sent
    return start["status"], dict(start["headers"]), orjson.loads(body["body"])


async def test_an_unexpected_exception_is_the_json_internal_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="nova.api.invoke"):
        status, headers, body = await _invoke(RuntimeError("a bug"))
    assert status == 500
    assert headers[b"content-type"] == b"application/json"
    assert body["error"]["code"] == "Nova.InternalError"
    assert "a bug" not in body["error"]["message"]  # details go to the log, not the client
    assert "a bug" in caplog.text


async def test_nova_errors_keep_their_status_and_code() -> None:
    status, _, body = await _invoke(FunctionNotFound("fn"))
    assert status == 404
    assert body["error"]["code"] == "Function.NotFound"
