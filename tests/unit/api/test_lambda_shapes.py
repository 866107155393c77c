"""Lambda's vocabulary: function names and ARNs, error translation, the tail log."""

from __future__ import annotations

import base64

import pytest

from nova.api.lambda_shapes import LambdaError, from_nova, split_function_name, tail_log
from nova.core.errors import (
    FunctionNotFound,
    PayloadTooLarge,
    StoreUnavailable,
    TooManyRequests,
    VersionNotFound,
)
from nova.executor.result import InvocationResult


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("echo", ("echo", None)),
        ("echo:live", ("echo", "live")),
        ("arn:aws:lambda:us-east-1:123456789012:function:echo", ("echo", None)),
        ("arn:aws:lambda:us-east-1:123456789012:function:echo:3", ("echo", "3")),
    ],
)
def test_function_names(raw: str, expected: tuple[str, str | None]) -> None:
    assert split_function_name(raw) == expected


def test_an_arn_of_something_else_is_refused() -> None:
    with pytest.raises(LambdaError) as caught:
        split_function_name("arn:aws:s3:::bucket")
    assert caught.value.name == "InvalidParameterValueException"


def test_nova_errors_become_the_sdk_exceptions() -> None:
    assert from_nova(FunctionNotFound("x"), "arn").name == "ResourceNotFoundException"
    assert from_nova(VersionNotFound("x", 3), "arn").status == 404
    assert from_nova(PayloadTooLarge("x"), "arn").name == "RequestTooLargeException"
    throttled = from_nova(TooManyRequests("x", retry_after_s=3), "arn")
    assert (throttled.name, throttled.headers["Retry-After"]) == ("TooManyRequestsException", "3")
    service = from_nova(StoreUnavailable("x"), "arn")
    assert (service.name, service.kind) == ("ServiceException", "Service")


def test_the_tail_log_is_the_last_4kb_in_lambdas_frame() -> None:
    result = InvocationResult("rid", None, None, 1.5, False, "$LATEST", stdout="x" * 10_000)
    log = base64.b64decode(tail_log(result, 128))
    assert len(log) == 4096
    assert log.endswith(b"Memory Size: 128 MB\n")
    short = base64.b64decode(tail_log(InvocationResult("r", 1, None, 1.0, False, "2"), 128))
    assert short.startswith(b"START RequestId: r Version: 2\n")
