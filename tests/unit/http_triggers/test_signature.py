"""Webhook HMAC checks: the right signature passes (with or without the sha256= prefix), a
wrong, missing or replayed one is refused with Trigger.InvalidSignature."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from nova.core.triggers import InvalidSignature, SignatureCheck
from nova.http_triggers.signature import sign, verify

SECRET = b"shared-secret"
BODY = b'{"action":"opened"}'
PLAIN = SignatureCheck("ref", "x-hub-signature-256")
TIMED = SignatureCheck("ref", "x-sig", timestamp_header="x-ts", tolerance_s=60)


def test_a_github_style_signature_passes() -> None:
    digest = hmac.new(SECRET, BODY, hashlib.sha256).hexdigest()
    verify(PLAIN, SECRET, {b"x-hub-signature-256": f"sha256={digest}".encode()}, BODY, 0)
    verify(PLAIN, SECRET, {b"x-hub-signature-256": digest.upper().encode()}, BODY, 0)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {b"x-hub-signature-256": sign(b"other", BODY).encode()},
        {b"x-hub-signature-256": sign(SECRET, BODY + b"!").encode()},
        {b"x-hub-signature-256": b"sha256=zz"},
    ],
)
def test_wrong_or_missing_signatures_are_refused(headers: dict[bytes, bytes]) -> None:
    with pytest.raises(InvalidSignature):
        verify(PLAIN, SECRET, headers, BODY, 0)


def test_the_timestamp_is_signed_and_must_be_recent() -> None:
    good = {b"x-ts": b"1000", b"x-sig": sign(SECRET, BODY, "1000").encode()}
    verify(TIMED, SECRET, good, BODY, 1030)
    with pytest.raises(InvalidSignature, match="more than 60s"):
        verify(TIMED, SECRET, good, BODY, 1061)
    moved = {b"x-ts": b"1001", b"x-sig": good[b"x-sig"]}  # same signature, other timestamp
    with pytest.raises(InvalidSignature, match="does not match"):
        verify(TIMED, SECRET, moved, BODY, 1030)
    with pytest.raises(InvalidSignature, match="Unix time"):
        verify(TIMED, SECRET, {b"x-sig": good[b"x-sig"]}, BODY, 1030)
