"""An HTTP request as a Lambda function-URL event (payload format 2.0), and a handler's answer
as the HTTP response - the shapes AWS documents, so a function written for a Lambda function
URL runs unchanged.

Request → event::

    {"version": "2.0", "routeKey": "$default", "rawPath": "/a/b", "rawQueryString": "x=1",
     "cookies": ["c=1"], "headers": {"content-type": "text/plain", ...},
     "queryStringParameters": {"x": "1"},
     "requestContext": {"http": {"method": "POST", "path": "/a/b", "protocol": "HTTP/1.1",
                                 "sourceIp": "127.0.0.1", "userAgent": "curl/8"}, ...},
     "body": "text, or base64 of a binary body", "isBase64Encoded": false}

Answer → response: a JSON object with ``statusCode`` gives the status, ``headers``,
``cookies`` (Set-Cookie), and ``body`` (a string; base64 when ``isBase64Encoded``; content type
``application/json`` unless the headers say otherwise). Any other value is the body of a 200
JSON response.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import parse_qsl

import orjson

from nova.core.errors import NovaError

_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript")
_TEXT_SUFFIXES = ("+json", "+xml", "x-www-form-urlencoded")
_JSON = b"application/json"

Headers = list[tuple[bytes, bytes]]


class InvalidResponse(NovaError):
    code = "Trigger.InvalidResponse"
    status = 502


def request_event(
    scope: MutableMapping[str, Any],
    path: str,
    body: bytes,
    request_id: str,
    route_key: str,
    api_id: str,
) -> bytes:
    """The event for a request whose function sees ``path`` (``/`` and below)."""
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        if name == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
        elif name in headers:
            headers[name] = f"{headers[name]},{value}"
        else:
            headers[name] = value
    query = scope["query_string"].decode("latin-1")
    now = time.time()
    client = scope.get("client") or ("", 0)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": api_id,
            "domainName": headers.get("host", ""),
            "domainPrefix": headers.get("host", "").split(".")[0],
            "http": {
                "method": scope["method"],
                "path": path,
                "protocol": f"HTTP/{scope.get('http_version', '1.1')}",
                "sourceIp": client[0],
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": route_key,
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        params: dict[str, str] = {}
        for key, value in parse_qsl(query, keep_blank_values=True):
            params[key] = f"{params[key]},{value}" if key in params else value
        event["queryStringParameters"] = params
    if body:
        text = _as_text(body, headers.get("content-type", ""))
        if text is None:
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
        else:
            event["body"] = text
    return orjson.dumps(event)


def _as_text(body: bytes, content_type: str) -> str | None:
    kind = content_type.split(";")[0].strip().lower()
    if not (kind.startswith(_TEXT_TYPES) or kind.endswith(_TEXT_SUFFIXES)):
        return None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def response_parts(output: Any, output_json: bytes) -> tuple[int, Headers, bytes]:
    """(status, headers, body) from what the handler returned; ``InvalidResponse`` (502) when
    it returned ``statusCode`` with parts that cannot make a response."""
    if not (isinstance(output, dict) and "statusCode" in output):
        return 200, [(b"content-type", _JSON)], output_json
    status = output["statusCode"]
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise InvalidResponse(f"statusCode: {str(status)[:40]!r} is not an HTTP status (100-599)")
    headers = _headers(output.get("headers"))
    for cookie in _strings(output.get("cookies"), "cookies"):
        headers.append((b"set-cookie", _header_value(cookie, "cookies")))
    if not any(name == b"content-type" for name, _ in headers):
        headers.append((b"content-type", _JSON))
    return status, headers, _body(output.get("body"), output.get("isBase64Encoded") is True)


def _headers(value: Any) -> Headers:
    if value is None:
        return []
    if not isinstance(value, dict):
        raise InvalidResponse("headers: must be an object of header name to value")
    headers: Headers = []
    for name, text in value.items():
        if isinstance(text, bool | int | float):
            text = str(text).lower() if isinstance(text, bool) else str(text)
        if not isinstance(text, str):
            raise InvalidResponse(f"headers: {name[:40]!r} must be a string")
        encoded = _header_value(name, "headers").lower()
        if not encoded or b":" in encoded or b" " in encoded:
            raise InvalidResponse(f"headers: {name[:40]!r} is not a header name")
        headers.append((encoded, _header_value(text, f"headers.{name[:40]}")))
    return headers


def _strings(value: Any, field: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidResponse(f"{field}: must be a list of strings")
    return value


def _header_value(text: str, field: str) -> bytes:
    if "\r" in text or "\n" in text:
        raise InvalidResponse(f"{field}: a header cannot hold a line break")
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        raise InvalidResponse(f"{field}: headers are Latin-1 text") from None


def _body(value: Any, is_base64: bool) -> bytes:
    if value is None:
        return b""
    if not isinstance(value, str):
        return orjson.dumps(value)  # a JSON body given as an object: what the client expects
    if not is_base64:
        return value.encode()
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidResponse("body: isBase64Encoded is true but the body is not base64") from None
