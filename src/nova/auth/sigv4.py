"""AWS Signature Version 4 on the Lambda API paths: a key's id and secret are an access key
id and a secret access key, so an AWS SDK or the AWS CLI configured with them is authenticated.

The request's canonical form is rebuilt as the SDKs build it (method, the path as sent and
URI-encoded again, the sorted query, the signed headers, the payload's SHA-256), signed with the
key derived from the secret, date, region and service, and compared in constant time. The
secret is needed in clear for that, so each key stores it sealed (AES-256-GCM) under a key
derived from the pepper: the database alone does not reveal it, the pepper alone neither.
Nothing here knows HTTP: the gate passes the parts of the request.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, quote

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from nova.core.auth import AuthError

ALGORITHM = b"AWS4-HMAC-SHA256"
MAX_SKEW = timedelta(minutes=15)  # AWS's own window for X-Amz-Date
_NONCE_BYTES = 12
_CREDENTIAL = re.compile(
    r"Credential=(?P<key>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[^/,\s]+)/(?P<service>[^/,\s]+)"
    r"/aws4_request"
)
_SIGNED = re.compile(r"SignedHeaders=(?P<headers>[a-z0-9;_.-]+)")
_SIGNATURE = re.compile(r"Signature=(?P<signature>[0-9a-f]{64})")


class UnrecognizedClient(AuthError):
    """No key has this access key id (AWS: UnrecognizedClientException)."""

    code = "Auth.InvalidKey"

    def __init__(self) -> None:
        super().__init__("The security token included in the request is invalid.")


class InvalidSignature(AuthError):
    """The signature does not match, is malformed, or is too old (InvalidSignatureException)."""

    code = "Auth.InvalidSignature"


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What the Authorization header says: who signed, when, for where, what, and the result."""

    access_key_id: str
    date: str  # YYYYMMDD of the credential scope
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(value: bytes) -> SignedRequest:
    text = value.decode("latin-1")
    credential = _CREDENTIAL.search(text)
    signed = _SIGNED.search(text)
    signature = _SIGNATURE.search(text)
    if credential is None or signed is None or signature is None:
        raise InvalidSignature(
            "the AWS4-HMAC-SHA256 Authorization header lacks Credential, SignedHeaders or Signature"
        )
    return SignedRequest(
        credential["key"],
        credential["date"],
        credential["region"],
        credential["service"],
        tuple(signed["headers"].split(";")),
        signature["signature"],
    )


def verify(
    signed: SignedRequest,
    secret: str,
    method: str,
    raw_path: bytes,
    query: bytes,
    headers: Iterable[tuple[bytes, bytes]],
    payload_sha256: str,
    now: datetime,
) -> None:
    """Raise ``InvalidSignature`` unless ``signed.signature`` signs this request with ``secret``."""
    values: dict[str, list[str]] = {}
    for name, value in headers:
        values.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
    amz_date = (values.get("x-amz-date") or [""])[0]
    try:
        when = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise InvalidSignature("the request has no valid X-Amz-Date header") from None
    if abs(now - when) > MAX_SKEW or amz_date[:8] != signed.date:
        raise InvalidSignature(
            f"Signature expired: {amz_date} is more than 15 minutes from the server's time "
            f"{now:%Y%m%dT%H%M%SZ} (check the client's clock)"
        )
    if "host" not in signed.signed_headers:
        raise InvalidSignature("the signature must cover the Host header")
    canonical_headers = "".join(
        f"{name}:{','.join(' '.join(v.split()) for v in values.get(name, []))}\n"
        for name in signed.signed_headers
    )
    canonical = "\n".join(
        [
            method,
            quote(raw_path.decode("latin-1"), safe="/~"),
            _canonical_query(query),
            canonical_headers,
            ";".join(signed.signed_headers),
            (values.get("x-amz-content-sha256") or [payload_sha256])[0],
        ]
    )
    scope = f"{signed.date}/{signed.region}/{signed.service}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = _sign(f"AWS4{secret}".encode(), signed.date)
    for part in (signed.region, signed.service, "aws4_request"):
        key = _sign(key, part)
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signed.signature):
        raise InvalidSignature(
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method."
        )


def _canonical_query(query: bytes) -> str:
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    encoded = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in encoded)


def _sign(key: bytes, message: str) -> bytes:
    return hmac.digest(key, message.encode(), "sha256")


class SecretSealer:
    """Seals a key's secret under a key derived from the pepper (the key id as associated
    data, so a sealed secret copied onto another key does not open)."""

    def __init__(self, pepper: bytes) -> None:
        self._aead = AESGCM(hmac.digest(pepper, b"nova api-key secret sealing", "sha256"))

    def seal(self, key_id: str, secret: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, secret.encode(), key_id.encode())

    def open(self, key_id: str, sealed: bytes) -> str:
        try:
            plain = self._aead.decrypt(
                sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], key_id.encode()
            )
        except InvalidTag:
            raise UnrecognizedClient() from None  # sealed under another pepper
        return plain.decode()
