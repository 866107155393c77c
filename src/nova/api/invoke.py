"""POST /functions/{name}/invoke as a bare ASGI handler in front of FastAPI.

This is the data-plane hot path, so it skips routing, dependency injection and model
validation: it matches the path by hand, reads the body under the payload limit (checking
Content-Length before reading), checks it is JSON, and hands the *original bytes* to the
executor. Everything else falls through to the FastAPI app.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from nova.api.context import Services
from nova.api.errors import SCOPE_ENVIRONMENT, error_body, error_headers, internal_error_body
from nova.api.tenancy import environment
from nova.core import ids
from nova.core.errors import MalformedJson, NovaError, PayloadTooLarge, RequestInvalid
from nova.core.names import split_reference, validate_qualifier
from nova.core.tenancy import Environment

logger = logging.getLogger(__name__)

_INVOKE_PATH = re.compile(r"^/functions/([^/]+)/invoke$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_DISCONNECTED = "the client disconnected before sending the whole body"
_JSON_CONTENT_TYPE = (b"content-type", b"application/json")


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
            name, qualifier = split_reference(name)
            name = environment(scope).full_name(name)
            if scope["query_string"]:
                qualifier = _query_qualifier(scope["query_string"], qualifier)
            event = await _read_event(headers, receive, services.settings.daemon.max_payload_bytes)
            invocation_type = headers.get(b"x-nova-invocation-type")
            if invocation_type is not None and invocation_type != b"RequestResponse":
                start, body = await _submit(services, name, qualifier, event, headers, request_id)
                await send(start)
                await send(body)
                return
            trace_parent = headers.get(b"traceparent")
            trace_state = headers.get(b"tracestate")
            routing_key = headers.get(b"x-nova-routing-key")
            result = await services.executor.invoke(
                name,
                event,
                qualifier=qualifier,
                routing_key=routing_key.decode("latin-1") if routing_key else None,
                request_id=request_id,
                trace_parent=trace_parent.decode("latin-1") if trace_parent else None,
                trace_state=trace_state.decode("latin-1") if trace_state else None,
            )
            start, body = _response(200, orjson.dumps(result.to_response()), request_id)
        except NovaError as exc:
            extra = [(key.encode(), value.encode()) for key, value in error_headers(exc).items()]
            message = _local_message(scope, exc.message)
            start, body = _response(exc.status, error_body(exc.code, message), request_id)
            start["headers"].extend(extra)
        except Exception:  # anything else is a bug; the client still gets the JSON error body
            logger.exception("unhandled error invoking %s (request %s)", name, request_id)
            start, body = _response(500, internal_error_body(), request_id)
        await send(start)
        await send(body)


async def _submit(
    services: Services,
    name: str,
    qualifier: str | None,
    event: bytes,
    headers: dict[bytes, bytes],
    request_id: str,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``X-Nova-Invocation-Type: Event``: store the event, answer 202 with its request id."""
    invocation_type = headers[b"x-nova-invocation-type"]
    if invocation_type != b"Event":
        raise RequestInvalid(
            f"X-Nova-Invocation-Type: {invocation_type.decode('latin-1')[:40]!r} is not "
            "RequestResponse (the default: wait for the result) or Event (run it later)"
        )
    key = headers.get(b"idempotency-key")
    stored_id = await services.invocations.submit(
        name,
        qualifier,
        event,
        idempotency_key=key.decode("latin-1") if key is not None else None,
        request_id=request_id if b"x-nova-request-id" in headers else None,
    )
    body = orjson.dumps({"request_id": stored_id, "status": "accepted"})
    return _response(202, body, stored_id)


def _local_message(scope: Scope, message: str) -> str:
    """The message with the request's full names bare (before the environment is known, or
    when naming it was the error, there is nothing to make bare)."""
    known: Environment | None = scope.get(SCOPE_ENVIRONMENT)
    return known.local(message) if known is not None else message


def _query_qualifier(query: bytes, in_path: str | None) -> str | None:
    """``?qualifier=`` (the same as ``name:qualifier`` in the path; both must agree)."""
    values = parse_qs(query.decode("latin-1")).get("qualifier")
    if not values:
        return in_path
    qualifier = validate_qualifier(values[-1])
    if in_path is not None and in_path != qualifier:
        raise RequestInvalid(
            f"qualifier: the path names {in_path!r} and ?qualifier= names {qualifier!r}; "
            "give one of them"
        )
    return qualifier


async def _read_event(headers: dict[bytes, bytes], receive: Receive, limit: int) -> bytes:
    declared = headers.get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(too_large(int(declared), limit))
    message = await receive()
    if message["type"] == "http.disconnect":
        raise MalformedJson(_DISCONNECTED)
    event: bytes = message.get("body", b"")
    if message.get("more_body", False):
        event = await read_rest(event, receive, limit)
    elif len(event) > limit:
        raise PayloadTooLarge(too_large(len(event), limit))
    try:
        orjson.loads(event)
    except orjson.JSONDecodeError as exc:
        if not event.strip():
            return b"{}"  # an empty body is an empty event, as in Lambda
        raise MalformedJson(f"the event must be JSON: {exc}") from None
    return event


async def read_rest(first: bytes, receive: Receive, limit: int) -> bytes:
    """The body of a request that arrived in several messages (large or slow uploads)."""
    chunks = [first]
    size = len(first)
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise MalformedJson(_DISCONNECTED)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(too_large(size, limit))
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def too_large(size: int, limit: int) -> str:
    return (
        f"the event is {size} bytes, over the {limit}-byte limit; send large data by reference "
        "(e.g. a URL) or raise daemon.max_payload_bytes"
    )


def _response(status: int, body: bytes, request_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The two ASGI messages of a JSON response (built without awaiting anything)."""
    headers = [
        _JSON_CONTENT_TYPE,
        (b"x-nova-request-id", request_id.encode()),
        (b"content-length", b"%d" % len(body)),
    ]
    start = {"type": "http.response.start", "status": status, "headers": headers}
    return start, {"type": "http.response.body", "body": body}
