"""Function URLs (``/fn/{name}[:qualifier]/{path...}``) and custom routes, as bare ASGI.

It sits behind the invoke fast path (which it never slows: that path matches first) and in
front of FastAPI. A request for ``/fn/...`` or under a custom route's prefix becomes a Lambda
function-URL event (``http_event``) run synchronously through the executor; the handler's
answer becomes the response. Anything else goes on to FastAPI untouched. Order of checks:
the body limit (``Content-Length`` before reading, then while reading), the trigger's
``auth`` setting (:func:`authorize`), the webhook signature, then the invocation. A function
error is a 502 with the error as JSON; so is an answer that cannot make a response.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from nova.api.auth_gate import SCOPE_TRIGGER_CHECK, TriggerCheck
from nova.api.context import Services
from nova.api.errors import error_body, error_headers, internal_error_body
from nova.api.http_event import Headers, request_event, response_parts
from nova.api.invoke import read_rest, too_large
from nova.core import ids
from nova.core.errors import MalformedJson, NovaError, PayloadTooLarge, RequestInvalid
from nova.core.models import InvocationError
from nova.core.tenancy import split_full_reference
from nova.core.triggers import RouteSpec, TriggerAuth
from nova.http_triggers.signature import verify

logger = logging.getLogger(__name__)

URL_PREFIX = "/fn/"
_OWN_HOT_PATHS = ("/functions/", "/2015-03-31/")


class MethodNotAllowed(NovaError):
    code = "Route.MethodNotAllowed"
    status = 405


async def authorize(auth: TriggerAuth, scope: Scope, function: str) -> None:
    """The one place a trigger's ``auth`` setting is enforced. ``none`` lets anyone in;
    ``platform`` needs what invoking ``function`` through the API needs, checked by the
    authentication gate in front (which leaves no check when authentication is off)."""
    if auth is TriggerAuth.NONE:
        return
    check: TriggerCheck | None = scope.get(SCOPE_TRIGGER_CHECK)
    if check is not None:
        await check(scope, function)


_CREDENTIAL_HEADERS = (b"authorization", b"x-api-key")


def _without_credentials(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The request's headers without the caller's Nova key or token, which the function must
    never see (it would be the caller's credential in the function's hands)."""
    return [(name, value) for name, value in headers if name not in _CREDENTIAL_HEADERS]


def is_trigger_request(services: Services | None, scope: Scope) -> bool:
    """Whether a request goes to a function URL or a custom route (the gate then leaves it to
    the trigger's auth setting). Nova's own paths are never route prefixes, so the invoke
    fast path's requests are told apart without a table lookup."""
    path: str = scope["path"]
    if path.startswith(URL_PREFIX):
        return True
    if services is None or path.startswith(_OWN_HOT_PATHS):
        return False
    table = services.http_routes.table
    return table is not None and table.match(scope.get("method", "GET"), path) is not None


class HttpTriggers:
    """``get_services`` returns None until the lifespan built them (and in apps built
    without any, as some tests do): then every request goes on to FastAPI."""

    def __init__(self, app: ASGIApp, get_services: Callable[[], Services | None]) -> None:
        self._app = app
        self._get_services = get_services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        services = self._get_services() if scope["type"] == "http" else None
        if services is None:
            await self._app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(URL_PREFIX):
            await self._function_url(services, path, scope, receive, send)
            return
        table = services.http_routes.table
        match = table.match(scope["method"], path) if table else None
        if match is None:
            await self._app(scope, receive, send)
            return
        request_id = ids.request_id()
        if match.route is None:
            error = MethodNotAllowed(f"no route takes {scope['method']} {path[:200]}")
            await _send(send, *_error(error, request_id), request_id)
            return
        route = match.route
        label = f"{route.method} {route.path_prefix}"
        await self._run(services, "route", route.spec, path, label, scope, receive, send)

    async def _function_url(
        self, services: Services, path: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        reference, slash, rest = path[len(URL_PREFIX) :].partition("/")
        try:
            # A function of another environment is reached by its full name there.
            name, qualifier = split_full_reference(reference)
        except RequestInvalid as exc:
            request_id = ids.request_id()
            await _send(send, *_error(exc, request_id), request_id)
            return
        config = services.http_routes.url_config(name)
        spec = RouteSpec(name, qualifier or "", config.auth, config.signature)
        await self._run(
            services, "url", spec, slash + rest or "/", "$default", scope, receive, send
        )

    async def _run(
        self,
        services: Services,
        kind: str,
        spec: RouteSpec,
        path: str,
        route_key: str,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        request_id = ids.request_id()
        try:
            headers = dict(scope["headers"])
            body = await _read_body(headers, receive, services.settings.daemon.max_payload_bytes)
            await authorize(spec.auth, scope, spec.function)
            if spec.signature is not None:
                secret = await services.http_routes.secret(spec.function, spec.signature)
                verify(spec.signature, secret, headers, body, time.time())
            if spec.auth is TriggerAuth.PLATFORM:  # the platform took the credential
                scope = {**scope, "headers": _without_credentials(scope["headers"])}
            event = request_event(scope, path, body, request_id, route_key, spec.function)
            trace_parent = headers.get(b"traceparent")
            result = await services.executor.invoke(
                spec.function,
                event,
                qualifier=spec.qualifier or None,
                request_id=request_id,
                trace_parent=trace_parent.decode("latin-1") if trace_parent else None,
            )
            if result.error is None:
                status, out_headers, out_body = response_parts(result.output, result.output_json)
            else:
                status, out_headers, out_body = _function_error(result.error, request_id)
        except NovaError as exc:
            status, out_headers, out_body = _error(exc, request_id)
        except Exception:  # a bug: still the JSON error body, never uvicorn's plain text
            logger.exception("unhandled error in the HTTP trigger of %s", spec.function)
            status, out_headers, out_body = (
                500,
                [(b"content-type", b"application/json")],
                (internal_error_body()),
            )
        services.trigger_metrics.http_request(kind, spec.function, status)
        await _send(send, status, out_headers, out_body, request_id)


async def _read_body(headers: dict[bytes, bytes], receive: Receive, limit: int) -> bytes:
    """The body under ``limit``, as the invoke fast path reads an event (without its JSON
    check); kept apart from it so that path stays one coroutine."""
    declared = headers.get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(too_large(int(declared), limit))
    message = await receive()
    if message["type"] == "http.disconnect":
        raise MalformedJson("the client disconnected before sending the whole body")
    body: bytes = message.get("body", b"")
    if message.get("more_body", False):
        return await read_rest(body, receive, limit)
    if len(body) > limit:
        raise PayloadTooLarge(too_large(len(body), limit))
    return body


def _function_error(error: InvocationError, request_id: str) -> tuple[int, Headers, bytes]:
    body = orjson.dumps(
        {
            "error": {
                "code": "Trigger.FunctionError",
                "message": f"the function failed: {error.type}: {error.message}",
                "type": error.type,
                "request_id": request_id,
            }
        }
    )
    return 502, [(b"content-type", b"application/json")], body


def _error(exc: NovaError, request_id: str) -> tuple[int, Headers, bytes]:
    headers: Headers = [(b"content-type", b"application/json")]
    headers.extend((key.encode(), value.encode()) for key, value in error_headers(exc).items())
    return exc.status, headers, error_body(exc.code, exc.message)


async def _send(send: Send, status: int, headers: Headers, body: bytes, request_id: str) -> None:
    headers = [
        *headers,
        (b"x-nova-request-id", request_id.encode()),
        (b"content-length", b"%d" % len(body)),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
