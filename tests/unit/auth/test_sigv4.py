"""SigV4 verification against botocore's own signer: what an AWS SDK signs verifies; a changed
body, path, query, header, secret or an old date does not."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest

pytest.importorskip("botocore", reason="pip install boto3 (the dev extras)")
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from nova.auth import sigv4

SECRET = "the-secret-part-of-a-nova-key"


def _signed(url: str, body: bytes, secret: str = SECRET) -> AWSRequest:
    request = AWSRequest(method="POST", url=url, data=body, headers={"X-Amz-Foo": "a  b"})
    SigV4Auth(Credentials("NKID", secret), "lambda", "us-east-1").add_auth(request)
    return request


def _check(request: AWSRequest, body: bytes, now: datetime | None = None) -> None:
    parts = urlsplit(request.url)
    headers = [(k.lower().encode(), v.encode()) for k, v in request.headers.items()]
    headers.append((b"host", parts.netloc.encode()))
    authorization = dict(headers)[b"authorization"]
    sigv4.verify(
        sigv4.parse_authorization(authorization),
        SECRET,
        "POST",
        parts.path.encode(),
        parts.query.encode(),
        headers,
        hashlib.sha256(body).hexdigest(),
        now or datetime.now(UTC),
    )


URL = (
    "http://nova:9000/2015-03-31/functions/arn%3Aaws%3Alambda%3Ar%3A1%3Afunction%3Aecho"
    "/invocations?Qualifier=%24LATEST"
)


def test_what_botocore_signs_verifies() -> None:
    body = b'{"a": 1}'
    request = _signed(URL, body)
    _check(request, body)
    assert sigv4.parse_authorization(request.headers["Authorization"].encode()).access_key_id == (
        "NKID"
    )


def test_changes_break_the_signature() -> None:
    body = b'{"a": 1}'
    with pytest.raises(sigv4.InvalidSignature, match="does not match"):
        _check(_signed(URL, body), b'{"a": 2}')
    with pytest.raises(sigv4.InvalidSignature, match="does not match"):
        _check(_signed(URL, body, secret="another"), body)
    with pytest.raises(sigv4.InvalidSignature, match="does not match"):
        _check(_moved(_signed(URL, body)), body)
    with pytest.raises(sigv4.InvalidSignature, match="expired"):
        _check(_signed(URL, body), body, datetime.now(UTC) + timedelta(minutes=20))
    with pytest.raises(sigv4.InvalidSignature, match="lacks"):
        sigv4.parse_authorization(b"AWS4-HMAC-SHA256 Credential=x")


def _moved(request: AWSRequest) -> AWSRequest:
    """The same signature on another query string."""
    request.url = request.url.replace("%24LATEST", "1")
    return request


def test_sealed_secrets_open_only_for_their_key_and_pepper() -> None:
    sealer = sigv4.SecretSealer(b"pepper-0123456789abcdef")
    sealed = sealer.seal("NK1", SECRET)
    assert sealer.open("NK1", sealed) == SECRET
    with pytest.raises(sigv4.UnrecognizedClient):
        sealer.open("NK2", sealed)
    with pytest.raises(sigv4.UnrecognizedClient):
        sigv4.SecretSealer(b"another-pepper-0123456").open("NK1", sealed)
