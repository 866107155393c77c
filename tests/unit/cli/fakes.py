"""An in-memory stand-in for the Nova HTTP API, served through ``httpx.MockTransport``."""

from __future__ import annotations

import json
from collections.abc import Callable
from email import policy
from email.parser import BytesParser
from typing import Any, Protocol

import httpx
from typer.testing import Result

Handler = Callable[[httpx.Request], httpx.Response]


class RunNova(Protocol):
    def __call__(
        self,
        *args: str,
        input: str | None = None,
        sleep: Callable[[float], None] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> Result: ...


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


class FakeApi:
    """Routes ``(method, path)`` to canned responses or handlers and records every request."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self._routes: dict[tuple[str, str], Handler] = {}

    def on(
        self,
        method: str,
        path: str,
        json_body: Any = None,
        *,
        status: int = 200,
        handler: Handler | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if handler is None:

            def handler(request: httpx.Request) -> httpx.Response:
                return httpx.Response(status, json=json_body, headers=headers)

        self._routes[(method, path)] = handler

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        handler = self._routes.get((request.method, request.url.path))
        if handler is None:
            return httpx.Response(404, json=error_body("Route.NotFound", "no such route"))
        return handler(request)

    @property
    def last(self) -> httpx.Request:
        assert self.requests, "no request was sent"
        return self.requests[-1]

    def sent(self) -> list[tuple[str, str]]:
        return [(request.method, request.url.path) for request in self.requests]


def body_of(request: httpx.Request) -> Any:
    assert request.headers["content-type"] == "application/json"
    return json.loads(request.content)


def multipart_parts(request: httpx.Request) -> dict[str, tuple[str | None, str, bytes]]:
    """name → (filename, content type, payload) of a multipart/form-data request."""
    content_type = request.headers["content-type"]
    assert content_type.startswith("multipart/form-data")
    raw = f"Content-Type: {content_type}\r\n\r\n".encode() + request.read()
    message = BytesParser(policy=policy.HTTP).parsebytes(raw)
    parts: dict[str, tuple[str | None, str, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        assert isinstance(name, str)
        assert isinstance(payload, bytes)
        parts[name] = (part.get_filename(), part.get_content_type(), payload)
    return parts


def function_record(name: str = "hello", **overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "name": name,
        "runtime": "python",
        "handler": "handler.handler",
        "memory_mb": 128,
        "timeout_s": 30.0,
        "env": {},
        "mode": "persistent",
        "min_replicas": 0,
        "max_replicas": 10,
        "instance_concurrency": 1,
        "backend": None,
        "network": False,
        "description": "",
        "code_hash": "ab" * 32,
        "code_size": 2048,
        "revision": 1,
        "created_at": "2025-01-02T03:04:05+00:00",
        "updated_at": "2025-01-02T03:04:05+00:00",
    }
    record.update(overrides)
    return record
