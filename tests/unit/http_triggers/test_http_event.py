"""The Lambda function-URL shapes: a request as an event (text and binary bodies, repeated
headers and query parameters, cookies) and an answer as a response (statusCode, headers,
cookies, base64 bodies, plain values), with the answers that cannot be a response refused."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from nova.api.http_event import InvalidResponse, request_event, response_parts


def _scope(headers: list[tuple[bytes, bytes]], query: bytes = b"") -> dict[str, Any]:
    return {
        "method": "POST",
        "headers": headers,
        "query_string": query,
        "client": ("10.0.0.1", 5000),
        "http_version": "1.1",
    }


def test_request_becomes_a_format_2_event() -> None:
    headers = [
        (b"host", b"nova.example"),
        (b"x-multi", b"a"),
        (b"x-multi", b"b"),
        (b"cookie", b"s=1; t=2"),
        (b"content-type", b"application/json; charset=utf-8"),
    ]
    raw = request_event(_scope(headers, b"q=1&q=2"), "/p", b'{"a":1}', "rid", "$default", "fn")
    event = orjson.loads(raw)
    assert event["headers"]["x-multi"] == "a,b"
    assert event["cookies"] == ["s=1", "t=2"]
    assert event["queryStringParameters"] == {"q": "1,2"}
    assert (event["body"], event["isBase64Encoded"]) == ('{"a":1}', False)
    assert event["requestContext"]["domainName"] == "nova.example"
    assert event["requestContext"]["http"]["sourceIp"] == "10.0.0.1"
    assert event["requestContext"]["requestId"] == "rid"


def test_binary_and_undeclared_bodies_are_base64() -> None:
    for content_type, body in ((b"image/png", b"\x89PNG"), (b"text/plain", b"\xff\xfe")):
        event = orjson.loads(
            request_event(_scope([(b"content-type", content_type)]), "/", body, "r", "k", "f")
        )
        assert event["isBase64Encoded"] is True
        assert base64.b64decode(event["body"]) == body
    empty = orjson.loads(request_event(_scope([]), "/", b"", "r", "k", "f"))
    assert "body" not in empty
    assert "queryStringParameters" not in empty


def test_status_code_answers() -> None:
    answer = {
        "statusCode": 404,
        "headers": {"X-Count": 3, "x-flag": True},
        "cookies": ["a=1"],
        "body": base64.b64encode(b"\x00\x01").decode(),
        "isBase64Encoded": True,
    }
    status, headers, body = response_parts(answer, b"")
    assert status == 404
    assert (b"x-count", b"3") in headers
    assert (b"x-flag", b"true") in headers
    assert (b"set-cookie", b"a=1") in headers
    assert (b"content-type", b"application/json") in headers
    assert body == b"\x00\x01"


def test_plain_values_are_json_200() -> None:
    assert response_parts([1, 2], b"[1,2]") == (
        200,
        [(b"content-type", b"application/json")],
        b"[1,2]",
    )
    assert response_parts({"no": "status"}, b'{"no":"status"}')[0] == 200


@pytest.mark.parametrize(
    "answer",
    [
        {"statusCode": 99},
        {"statusCode": True},
        {"statusCode": 200, "headers": ["x"]},
        {"statusCode": 200, "headers": {"x": "a\r\nb"}},
        {"statusCode": 200, "headers": {"bad name": "v"}},
        {"statusCode": 200, "cookies": "a=1"},
        {"statusCode": 200, "body": "!!", "isBase64Encoded": True},
    ],
)
def test_answers_that_cannot_be_a_response(answer: dict[str, Any]) -> None:
    with pytest.raises(InvalidResponse):
        response_parts(answer, b"")
