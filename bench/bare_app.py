"""The baseline: the smallest ASGI app uvicorn can serve, on the same loop and parser as Nova."""

from __future__ import annotations

from typing import Any

BODY = b'{"output":{"message":"Hello, world!"}}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
