"""POST /functions/{name}/invoke as a bare ASGI handler in front of FastAPI.

This is the data-plane hot path, so it skips routing, dependency injection and model
validation: it matches the path by hand, reads the body under the payload limit (checking
Content-Length before reading), checks it is JSON, and hands the *original bytes* to the
executor. Everything else falls through to the FastAPI app.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from nova.api.context import Services
from nova.api.errors import error_body, error_headers
from nova.core import ids
from nova.core.errors import MalformedJson, NovaError, PayloadTooLarge
from nova.core.names import validate_function_name

_INVOKE_PATH = re.compile(r"^/functions/([^/]+)/invoke$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_JSON_HEADERS = [(b"content-type", b"application/json")]


class InvokeFastPath:
    def __init__(self, app: ASGIApp, get_services: Callable[[], Services]) -> None:
        self._app = app
        self._get_services = get_services
        self._services: Services | None = None  # built once by the lifespan, then reused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            match = _INVOKE_PATH.match(scope["path"])
            if match:
                await self._invoke(match.group(1), scope, receive, send)
                return
        await self._app(scope, receive, send)

    async def _invoke(self, name: str, scope: Scope, receive: Receive, send: Send) -> None:
        services = self._services
        if services is None:
            services = self._services = self._get_services()
        headers = dict(scope["headers"])
        request_id = headers.get(b"x-nova-request-id", b"").decode("latin-1")
        if not _REQUEST_ID.match(request_id):
            request_id = ids.request_id()
        try:
            validate_function_name(name)
            event = await _read_event(headers, receive, services.settings.daemon.max_payload_bytes)
            trace_parent = headers.get(b"traceparent")
            result = await services.executor.invoke(
                name,
                event,
                request_id=request_id,
                trace_parent=trace_parent.decode("latin-1") if trace_parent else None,
            )
        except NovaError as exc:
            extra = [(key.encode(), value.encode()) for key, value in error_headers(exc).items()]
            await _respond(send, exc.status, error_body(exc.code, exc.message), request_id, extra)
            return
        await _respond(send, 200, orjson.dumps(result.to_response()), request_id)


async def _read_event(headers: dict[bytes, bytes], receive: Receive, limit: int) -> bytes:
    declared = headers.get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(_too_large(int(declared), limit))
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise MalformedJson("the client disconnected before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(_too_large(size, limit))
        chunks.append(chunk)
        more = message.get("more_body", False)
    event = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if not event.strip():
        return b"{}"  # an empty body is an empty event, as in Lambda
    try:
        orjson.loads(event)
    except orjson.JSONDecodeError as exc:
        raise MalformedJson(f"the event must be JSON: {exc}") from None
    return event


def _too_large(size: int, limit: int) -> str:
    return (
        f"the event is {size} bytes, over the {limit}-byte limit; send large data by reference "
        "(e.g. a URL) or raise daemon.max_payload_bytes"
    )


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    request_id: str,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [
        *_JSON_HEADERS,
        (b"x-nova-request-id", request_id.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
