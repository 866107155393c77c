"""The AWS Lambda API (2015-03-31) over Nova: Invoke, GetFunction, ListFunctions.

So AWS SDKs and the AWS CLI, pointed at Nova with ``endpoint_url``, work unchanged, down to the
exception classes they raise. These are ordinary FastAPI routes, behind the native invoke's
fast path (api/invoke.py), which they never slow down. Every error leaves in Lambda's shape
(lambda_shapes.py), never Nova's ``{"error": …}``.
"""

from __future__ import annotations

import base64
import binascii
import logging

import orjson
from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from nova.api.auth_gate import sees
from nova.api.context import Services
from nova.api.lambda_shapes import (
    LambdaError,
    configuration,
    error_payload,
    error_response,
    from_nova,
    function_arn,
    split_function_name,
    tail_log,
)
from nova.api.routes.functions import services
from nova.api.tenancy import environment, full_name
from nova.core import ids
from nova.core.errors import MalformedJson, NovaError, PayloadTooLarge
from nova.core.names import validate_qualifier
from nova.core.tenancy import short_name

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/2015-03-31", tags=["lambda"])
INVOCATION_TYPES = ("RequestResponse", "Event", "DryRun")
_MAX_LIST = 50  # ListFunctions' default and largest page, as on Lambda


@router.post(
    "/functions/{function_name}/invocations",
    summary="Lambda Invoke (X-Amz-Invocation-Type, ?Qualifier=, X-Amz-Log-Type: Tail)",
)
async def invoke(request: Request, function_name: str) -> Response:
    try:
        return await _invoke(request, function_name)
    except LambdaError as exc:
        return error_response(exc)
    except NovaError as exc:
        return error_response(from_nova(exc, function_arn(function_name)))


@router.get("/functions", summary="Lambda ListFunctions", include_in_schema=False)
@router.get("/functions/", summary="Lambda ListFunctions")
async def list_functions(request: Request) -> Response:
    try:
        limit = int(request.query_params.get("MaxItems") or _MAX_LIST)
        if not 1 <= limit <= _MAX_LIST:
            raise LambdaError(
                "InvalidParameterValueException", 400, f"MaxItems must be 1-{_MAX_LIST}"
            )
        page = await services(request).functions.list(
            limit, request.query_params.get("Marker"), environment(request.scope)
        )
    except ValueError:
        return error_response(
            LambdaError("InvalidParameterValueException", 400, "MaxItems must be an integer")
        )
    except LambdaError as exc:
        return error_response(exc)
    except NovaError as exc:
        return error_response(from_nova(exc, "ListFunctions"))
    records = [record for record in page.items if sees(request.scope, short_name(record.name))]
    body = {"Functions": [configuration(record) for record in records]}
    if page.next:
        body["NextMarker"] = page.next  # type: ignore[assignment]
    return JSONResponse(body)


@router.get("/functions/{function_name}", summary="Lambda GetFunction")
async def get_function(request: Request, function_name: str) -> Response:
    try:
        name, qualifier = split_function_name(function_name)
        qualifier = request.query_params.get("Qualifier") or qualifier
        svc = services(request)
        name = full_name(request, name)
        record = await svc.functions.get(name)
        version = "$LATEST"
        if qualifier:
            version = await svc.executor.version_for(name, validate_qualifier(qualifier))
    except LambdaError as exc:
        return error_response(exc)
    except NovaError as exc:
        return error_response(from_nova(exc, function_arn(function_name)))
    return JSONResponse(
        {
            "Configuration": configuration(record, version),
            "Code": {"RepositoryType": "Nova", "Location": ""},
        }
    )


async def _invoke(request: Request, function_name: str) -> Response:
    svc = services(request)
    name, qualifier = split_function_name(function_name)
    qualifier = request.query_params.get("Qualifier") or qualifier
    name = full_name(request, name)
    if qualifier is not None:
        qualifier = validate_qualifier(qualifier)
    kind = request.headers.get("x-amz-invocation-type", "RequestResponse")
    if kind not in INVOCATION_TYPES:
        raise LambdaError(
            "InvalidParameterValueException",
            400,
            f"X-Amz-Invocation-Type must be one of {', '.join(INVOCATION_TYPES)}, not {kind!r}",
        )
    event = await _event(request, svc.settings.daemon.max_payload_bytes)
    client_context = _client_context(request.headers.get("x-amz-client-context"))
    request_id = ids.request_id()
    if kind == "DryRun":
        await svc.executor.version_for(name, qualifier)
        return Response(status_code=204, headers={"x-amzn-RequestId": request_id})
    if kind == "Event":
        version = await svc.executor.version_for(name, qualifier)  # 404 now, not later
        await queue_event(svc, name, event, qualifier, request_id)
        headers = {"x-amzn-RequestId": request_id, "X-Amz-Executed-Version": version}
        return Response(status_code=202, headers=headers)
    result = await svc.executor.invoke(
        name, event, qualifier=qualifier, request_id=request_id, client_context=client_context
    )
    headers = {"x-amzn-RequestId": request_id, "X-Amz-Executed-Version": result.version}
    if request.headers.get("x-amz-log-type") == "Tail":
        memory_mb = (await svc.functions.get(name)).config.memory_mb
        headers["X-Amz-Log-Result"] = tail_log(result, memory_mb)
    if result.error is not None:
        headers["X-Amz-Function-Error"] = "Unhandled"
        return Response(error_payload(result.error), 200, headers, "application/json")
    return Response(result.output_json, 200, headers, "application/json")


async def queue_event(
    svc: Services, name: str, event: bytes, qualifier: str | None, request_id: str
) -> None:
    """Store an ``Event`` invocation in the durable queue before answering 202, so it runs
    (with the function's retries and dead letters) even if the daemon stops right after."""
    await svc.invocations.submit(name, qualifier, event, source="lambda", request_id=request_id)


async def _event(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the request is {declared} bytes, over the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the request is over the {limit}-byte limit")
        chunks.append(chunk)
    event = b"".join(chunks)
    if not event.strip():
        return b"{}"  # no payload is an empty event, as on Lambda
    try:
        orjson.loads(event)
    except orjson.JSONDecodeError as exc:
        raise MalformedJson(f"Could not parse request body into json: {exc}") from None
    return event


def _client_context(header: str | None) -> str | None:
    """X-Amz-Client-Context: base64 of a JSON object (at most 3,583 bytes, as on Lambda)."""
    if not header:
        return None
    try:
        text = base64.b64decode(header, validate=True).decode()
        orjson.loads(text)
    except (binascii.Error, UnicodeDecodeError, orjson.JSONDecodeError):
        raise LambdaError(
            "InvalidRequestContentException",
            400,
            "X-Amz-Client-Context must be base64 of a JSON object",
        ) from None
    if len(header) > 3583:
        raise LambdaError(
            "InvalidParameterValueException", 400, "X-Amz-Client-Context is over 3583 bytes"
        )
    return text
