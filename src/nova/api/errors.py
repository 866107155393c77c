"""Every non-2xx body is rendered here: ``{"error": {"code", "message"}}`` (API.md)."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from nova.core.errors import NovaError, TooManyRequests
from nova.core.tenancy import Environment

logger = logging.getLogger(__name__)

_HTTP_CODES = {404: "Route.NotFound", 405: "Route.MethodNotAllowed"}


def error_body(code: str, message: str) -> bytes:
    return orjson.dumps({"error": {"code": code, "message": message}})


# The request's environment in its ASGI scope, once worked out (nova.api.tenancy).
SCOPE_ENVIRONMENT = "nova.environment"


def internal_error_body() -> bytes:
    """The body of a 500 for an exception nobody expected (the log has its traceback)."""
    return error_body(
        "Nova.InternalError", "the daemon hit an internal error; the daemon log has the details"
    )


def error_headers(error: NovaError) -> dict[str, str]:
    if isinstance(error, TooManyRequests):
        return {"retry-after": str(error.retry_after_s)}
    return {}


def nova_error_response(error: NovaError, environment: Environment | None = None) -> Response:
    """The error's JSON answer; ``environment``: the request's, whose full names the message
    shows bare (a function is ``hello`` to its own environment)."""
    message = environment.local(error.message) if environment is not None else error.message
    return Response(
        error_body(error.code, message),
        error.status,
        error_headers(error),
        "application/json",
    )


def validation_message(errors: list[Any]) -> tuple[int, str, str]:
    """Turn pydantic's error list into (status, code, one message naming the field)."""
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":
        return (
            400,
            "Request.MalformedJson",
            f"the body is not valid JSON: {first.get('ctx', {}).get('error', '')}".rstrip(": "),
        )
    location = [str(part) for part in first.get("loc", ()) if part != "body"]
    field = ".".join(location) or "body"
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return 422, "Request.Invalid", f"{field}: {first.get('msg', 'is invalid')}{more}"


def install(app: FastAPI) -> None:
    @app.exception_handler(NovaError)
    async def _nova(request: Request, exc: NovaError) -> Response:
        return nova_error_response(exc, request.scope.get(SCOPE_ENVIRONMENT))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> Response:
        status, code, message = validation_message(list(exc.errors()))
        return Response(error_body(code, message), status, media_type="application/json")

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, f"Http.{exc.status_code}")
        return Response(
            error_body(code, str(exc.detail)), exc.status_code, exc.headers, "application/json"
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return Response(internal_error_body(), 500, media_type="application/json")
