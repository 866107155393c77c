"""AWS Signature Version 4 requests on the Lambda API paths, for the authentication gate.

Verifying a signature needs the payload's SHA-256, so the body is read here (up to the payload
limit) and handed on to the route as if it had not been read.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from starlette.types import Message, Receive, Scope

from nova.auth import sigv4
from nova.auth.verifier import KeyVerifier
from nova.core.auth import ApiKey
from nova.core.errors import MalformedJson, PayloadTooLarge

_AWS4 = sigv4.ALGORITHM + b" "


def aws_authorization(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The request's ``Authorization: AWS4-HMAC-SHA256 …`` value, if it has one."""
    for name, value in headers:
        if name == b"authorization" and value.startswith(_AWS4):
            return value
    return None


async def signed_key(
    scope: Scope, receive: Receive, authorization: bytes, verifier: KeyVerifier, limit: int
) -> tuple[ApiKey, Receive]:
    """The key that signed the request, and the ``receive`` the app reads the body from."""
    signed = sigv4.parse_authorization(authorization)
    key, secret = await verifier.by_access_key(signed.access_key_id)
    body = await _read_body(receive, limit)
    sigv4.verify(
        signed,
        secret,
        scope["method"],
        scope.get("raw_path") or scope["path"].encode(),
        scope["query_string"],
        scope["headers"],
        hashlib.sha256(body).hexdigest(),
        datetime.now(UTC),
    )
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()  # the disconnect, when it comes
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return key, replay


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise MalformedJson("the client disconnected before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the request is over {limit} bytes (daemon.max_payload_bytes)")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
