"""What the generated OpenAPI document cannot see by itself, and the offline docs pages.

Two routes read their bodies by hand and one is not a FastAPI route at all:

- create and update (``routes/functions.py``) accept JSON *or* a multipart ``meta`` + ``zip``
  upload, so their request bodies are declared here (:func:`function_body`) and the models
  they reference are added to the document's components (:func:`install`);
- invoke is served by the ASGI fast path in front of FastAPI (``api/invoke.py``), so it is
  declared by :data:`invoke_router`, a route that only documents: the fast path answers every
  request for its path before FastAPI routes anything.

``/docs`` (Swagger UI) and ``/redoc`` load their scripts and styles from the daemon
(the pinned ``fastapi-offline`` package ships them), so they work without internet access.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Header, Query
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel

from nova.api.schemas import ErrorResponse, InvokeResponse

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]
DOCS_STATIC_URL = "/docs/static"


def documented_app(title: str, version: str, lifespan: Lifespan) -> FastAPI:
    """A FastAPI app whose /docs and /redoc pages use only the daemon's own URLs."""
    return FastAPIOffline(
        title=title, version=version, lifespan=lifespan, static_url=DOCS_STATIC_URL
    )


def install(api: FastAPI, models: Iterable[type[BaseModel]]) -> None:
    """Add ``models`` (request bodies FastAPI does not parse itself) to the components of
    ``api``'s OpenAPI document, where :func:`function_body` refers to them."""
    generate = api.openapi
    body_models = tuple(models)

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            document = generate()
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            for model in body_models:
                schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                schemas.update(schema.pop("$defs", {}))
                schemas[model.__name__] = schema
        return api.openapi_schema or {}

    api.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override


def function_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` of a route that reads ``model`` as JSON or a multipart upload."""
    reference = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": reference},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["meta", "zip"],
                        "properties": {
                            "meta": {
                                **reference,
                                "description": "the fields as JSON, without code, files "
                                "or code_path: the zip is the code",
                            },
                            "zip": {"type": "string", "format": "binary"},
                        },
                    },
                    "encoding": {
                        "meta": {"contentType": "application/json"},
                        "zip": {"contentType": "application/zip"},
                    },
                },
            },
        }
    }


def json_body(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    """A JSON request body read by hand (any content type is accepted, as everywhere)."""
    reference = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {
        "requestBody": {
            "required": required,
            "content": {"application/json": {"schema": reference}},
        }
    }


ZIP_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
    }
}

_ERRORS = {
    400: "Request.MalformedJson: the event is not JSON",
    404: "Function.NotFound, Version.NotFound, Alias.NotFound",
    409: "Invocation.AlreadyExists: an Event with this X-Nova-Request-Id is already stored",
    413: "Request.PayloadTooLarge: the event is over daemon.max_payload_bytes",
    422: "Request.Invalid: the name or qualifier in the path is not valid",
    429: "Function.TooManyRequests: at max_replicas and the wait queue is full (Retry-After)",
    502: "Sandbox.*: an instance could not be started or failed",
    503: "Daemon.ShuttingDown, Sandbox.ImageNotReady",
}
_EVENT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "description": "The event: any JSON value; an empty body is {}.",
        "content": {"application/json": {"schema": {}, "example": {"name": "Ada"}}},
    }
}

invoke_router = APIRouter(tags=["invoke"])


@invoke_router.post(
    "/functions/{name}/invoke",
    summary="Invoke a function and wait for its result (or queue it: 202)",
    description=(
        "200 whether or not the handler failed: a failure is `error` "
        "(`{type, message, stack}`), not an HTTP error. `{name}` may carry a qualifier, "
        "`name:3` (a version), `name:prod` (an alias) or `name:$LATEST` (the default); "
        "`version` in the answer is the version that ran."
    ),
    response_model=InvokeResponse,
    responses={
        status: {"model": ErrorResponse, "description": text} for status, text in _ERRORS.items()
    },
    openapi_extra=_EVENT_BODY,
)
async def invoke_function(
    name: str,
    x_nova_request_id: Annotated[
        str | None, Header(description="echoed; the function's request id (generated if absent)")
    ] = None,
    traceparent: Annotated[
        str | None,
        Header(
            description="W3C trace context: Nova's spans continue it (with tracing on) and the "
            "function sees it as NOVA_TRACE_PARENT"
        ),
    ] = None,
    tracestate: Annotated[
        str | None, Header(description="W3C vendor trace state, kept on Nova's spans")
    ] = None,
    x_nova_routing_key: Annotated[
        str | None,
        Header(description="a weighted alias sends every call with this key to one version"),
    ] = None,
    qualifier: Annotated[
        str | None, Query(description="a version number, an alias or $LATEST (as name:qualifier)")
    ] = None,
    x_nova_invocation_type: Annotated[
        str | None,
        Header(
            description="RequestResponse (default) waits for the result; Event stores the "
            "event and answers 202 {request_id} at once (GET /invocations/{request_id})"
        ),
    ] = None,
    idempotency_key: Annotated[
        str | None,
        Header(description="with Event: a repeat with the same key returns the first request id"),
    ] = None,
) -> InvokeResponse:
    """Never runs: InvokeFastPath answers this path before FastAPI routes the request."""
    raise RuntimeError("POST /functions/{name}/invoke is served by api.invoke.InvokeFastPath")
