"""Lambda's wire shapes: function names and ARNs, errors, a function's configuration, tail logs.

Kept apart from the routes so the AWS vocabulary lives in one place. Errors follow the Lambda
REST-JSON protocol the AWS SDKs parse: the ``x-amzn-ErrorType`` header names the exception
class (boto3 raises ``client.exceptions.<name>``), the body carries ``Type``/``Message`` (and
``__type``/``message`` for SDKs that read those).
"""

from __future__ import annotations

import base64
import math
from typing import Any

import orjson
from starlette.responses import Response

from nova.core.errors import (
    AliasNotFound,
    FunctionNotFound,
    MalformedJson,
    NovaError,
    PayloadTooLarge,
    RequestInvalid,
    TooManyRequests,
    VersionNotFound,
)
from nova.core.models import FunctionRecord, InvocationError
from nova.core.tenancy import short_name
from nova.executor.result import InvocationResult

REGION = "nova"  # placeholders where Lambda has a region and an account
ACCOUNT = "000000000000"
TAIL_BYTES = 4096  # X-Amz-Log-Result carries the last 4 KB of the log, as on Lambda
_ARN_FUNCTION = ":function:"


class LambdaError(Exception):
    """An error in Lambda's vocabulary: the exception name, its HTTP status and Type."""

    def __init__(self, name: str, status: int, message: str, kind: str = "User") -> None:
        super().__init__(message)
        self.name = name
        self.status = status
        self.message = message
        self.kind = kind
        self.headers: dict[str, str] = {}


def function_arn(name: str, qualifier: str | None = None) -> str:
    arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
    return f"{arn}:{qualifier}" if qualifier else arn


def split_function_name(raw: str) -> tuple[str, str | None]:
    """``name``, ``name:qualifier``, or an ARN of either -> (name, qualifier or None)."""
    if raw.startswith("arn:"):
        at = raw.find(_ARN_FUNCTION)
        if at < 0:
            raise LambdaError(
                "InvalidParameterValueException", 400, f"{raw!r} is not a function ARN"
            )
        raw = raw[at + len(_ARN_FUNCTION) :]
    name, _, qualifier = raw.partition(":")
    return name, qualifier or None


def from_nova(error: NovaError, what: str) -> LambdaError:
    """A NovaError as the Lambda exception an SDK expects for the same condition."""
    if isinstance(error, FunctionNotFound | VersionNotFound | AliasNotFound):
        return LambdaError("ResourceNotFoundException", 404, f"Function not found: {what}")
    if isinstance(error, PayloadTooLarge):
        return LambdaError("RequestTooLargeException", 413, error.message)
    if isinstance(error, MalformedJson):
        return LambdaError("InvalidRequestContentException", 400, error.message)
    if isinstance(error, TooManyRequests):
        lambda_error = LambdaError("TooManyRequestsException", 429, error.message)
        lambda_error.headers["Retry-After"] = str(error.retry_after_s)
        return lambda_error
    if isinstance(error, RequestInvalid):
        return LambdaError("InvalidParameterValueException", 400, error.message)
    return LambdaError("ServiceException", error.status, error.message, "Service")


def error_response(error: LambdaError) -> Response:
    body = {
        "Type": error.kind,
        "Message": error.message,
        "__type": error.name,
        "message": error.message,
    }
    if error.name == "TooManyRequestsException":
        body["Reason"] = "ConcurrentInvocationLimitExceeded"
    headers = {"x-amzn-ErrorType": error.name, **error.headers}
    return Response(orjson.dumps(body), error.status, headers, "application/json")


def configuration(record: FunctionRecord, version: str = "$LATEST") -> dict[str, Any]:
    """A FunctionConfiguration as GetFunction and ListFunctions return it."""
    config = record.config
    return {
        "FunctionName": short_name(record.name),
        "FunctionArn": function_arn(short_name(record.name)),
        "Runtime": config.runtime,
        "Role": f"arn:aws:iam::{ACCOUNT}:role/nova",
        "Handler": config.handler,
        "CodeSize": record.code_size,
        "Description": config.description,
        "Timeout": math.ceil(config.timeout_s),
        "MemorySize": config.memory_mb,
        "LastModified": record.updated_at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000",
        "CodeSha256": base64.b64encode(bytes.fromhex(record.code_hash)).decode(),
        "Version": version,
        "Environment": {"Variables": dict(config.env)},
        "RevisionId": str(record.revision),
        "State": "Active",
        "LastUpdateStatus": "Successful",
        "PackageType": "Zip",
        "Architectures": ["x86_64"],
    }


def error_payload(error: InvocationError) -> bytes:
    """The body of a function error: what the Lambda runtimes return for an unhandled one."""
    return orjson.dumps(
        {"errorMessage": error.message, "errorType": error.type, "stackTrace": error.stack}
    )


def tail_log(result: InvocationResult, memory_mb: int) -> str:
    """Base64 of the last 4 KB of the invocation's log, in Lambda's START/END/REPORT frame."""
    rid = result.request_id
    log = (
        f"START RequestId: {rid} Version: {result.version}\n{result.stdout}{result.stderr}"
        f"END RequestId: {rid}\nREPORT RequestId: {rid}\tDuration: {result.duration_ms:.2f} ms"
        f"\tBilled Duration: {math.ceil(result.duration_ms)} ms\tMemory Size: {memory_mb} MB\n"
    ).encode()
    return base64.b64encode(log[-TAIL_BYTES:]).decode()
