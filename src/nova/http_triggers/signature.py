"""Webhook signatures: HMAC-SHA256 of the body (or of ``{timestamp}.{body}``) with a shared
secret, the GitHub / Stripe style of proving a request came from the sender.

The header holds the hex digest, optionally prefixed ``sha256=`` (GitHub's
``X-Hub-Signature-256``). The comparison is constant-time. With a timestamp header, the
timestamp (Unix seconds) is part of what is signed and must be within ``tolerance_s`` of
now, so a captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from nova.core.triggers import InvalidSignature, SignatureCheck

ALGORITHMS = {"sha256": hashlib.sha256}


def sign(secret: bytes, body: bytes, timestamp: str | None = None) -> str:
    """The header value a sender computes (``sha256=<hex>``); tests and docs use it too."""
    message = body if timestamp is None else timestamp.encode() + b"." + body
    return "sha256=" + hmac.new(secret, message, hashlib.sha256).hexdigest()


def verify(
    check: SignatureCheck,
    secret: bytes,
    headers: Mapping[bytes, bytes],
    body: bytes,
    now: float,
) -> None:
    """Return if the request is signed with ``secret``; ``InvalidSignature`` saying what is
    missing or wrong otherwise (never which bytes differed)."""
    given = headers.get(check.header.encode())
    if given is None:
        raise InvalidSignature(f"the request has no {check.header} header; sign it with HMAC")
    timestamp = None
    if check.timestamp_header is not None:
        raw = headers.get(check.timestamp_header.encode())
        if raw is None or not raw.isdigit():
            raise InvalidSignature(
                f"the {check.timestamp_header} header must hold the Unix time in seconds"
            )
        if abs(now - int(raw)) > check.tolerance_s:
            raise InvalidSignature(
                f"the {check.timestamp_header} timestamp is more than {check.tolerance_s}s "
                "from the daemon's clock (a replay, or a clock to fix)"
            )
        timestamp = raw.decode()
    expected = sign(secret, body, timestamp).encode()
    digest = given.strip()
    if not digest.startswith(b"sha256="):
        digest = b"sha256=" + digest
    if not hmac.compare_digest(digest.lower(), expected):
        raise InvalidSignature(f"the {check.header} signature does not match the body")
