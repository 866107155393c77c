"""JWT verification: HS256 and RS256 (JWKS file), issuer, audience, expiry, not-before, clock
skew, claims mapped to a role and a scope, and the cache of verified tokens."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from nova.auth.jwt_tokens import (
    InvalidToken,
    JwtPolicy,
    JwtVerifier,
    TokenExpired,
    load_jwks,
    looks_like_jwt,
)
from nova.core.auth import Role
from nova.core.tenancy import Environment

SECRET = b"a-shared-secret-of-at-least-32-bytes!"


def _policy(**fields: Any) -> JwtPolicy:
    values: dict[str, Any] = {
        "algorithms": ("HS256", "RS256"),
        "hs256_secret": SECRET,
        "jwks": None,
        "issuer": "https://idp.example",
        "audience": "nova",
        "leeway_s": 30.0,
        "role_claim": "nova_role",
        "scope_claim": "nova_scope",
        "environment_claim": "nova_env",
        "role_map": {**{role.value: role for role in Role}, "platform": Role.ADMIN},
        "default_role": None,
        **fields,
    }
    return JwtPolicy(**values)


def _claims(**fields: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "sub": "ada",
        "iss": "https://idp.example",
        "aud": "nova",
        "iat": now,
        "exp": now + 600,
        "nova_role": "developer",
        **fields,
    }


def test_hs256_claims_become_a_principal() -> None:
    verifier = JwtVerifier(_policy())
    token = jwt.encode(_claims(nova_scope=["orders-*", "billing"]), SECRET, "HS256").encode()
    assert looks_like_jwt(token)
    principal = verifier.verify(token)
    assert (principal.id, principal.name, principal.role) == ("jwt:ada", "ada", Role.DEVELOPER)
    assert principal.scope == ("orders-*", "billing")
    assert verifier.verify(token) is principal  # cached
    mapped = jwt.encode(_claims(nova_role="platform"), SECRET, "HS256").encode()
    assert verifier.verify(mapped).role is Role.ADMIN
    assert verifier.verify(mapped).unscoped
    assert verifier.verify(mapped).environment is None  # no claim: every environment


def test_the_environment_claim_binds_the_token() -> None:
    verifier = JwtVerifier(_policy())
    bound = jwt.encode(_claims(nova_env="acme/shop/prod"), SECRET, "HS256").encode()
    assert verifier.verify(bound).environment == Environment("acme", "shop", "prod")
    every = jwt.encode(_claims(nova_env="*"), SECRET, "HS256").encode()
    assert verifier.verify(every).environment is None


@pytest.mark.parametrize(
    ("claims", "error", "text"),
    [
        ({"aud": "other"}, InvalidToken, "audience"),
        ({"iss": "https://evil.example"}, InvalidToken, "issuer"),
        ({"exp": -120}, TokenExpired, "expired"),  # times: seconds from when the test runs
        ({"nbf": 600}, InvalidToken, "not valid yet"),
        ({"nova_role": "root"}, InvalidToken, "maps to no role"),
        ({"nova_scope": "Bad Scope!"}, InvalidToken, "nova_scope"),
        ({"nova_env": "acme/shop"}, InvalidToken, "nova_env"),
    ],
)
def test_bad_tokens_are_refused(claims: dict[str, Any], error: type[Exception], text: str) -> None:
    # Relative times are made absolute now, not at collection: a long suite collects its
    # tests many minutes before it runs them.
    now = int(time.time())
    claims = {
        name: now + value if name in ("exp", "nbf") else value for name, value in claims.items()
    }
    token = jwt.encode(_claims(**claims), SECRET, "HS256").encode()
    with pytest.raises(error, match=text):
        JwtVerifier(_policy()).verify(token)


def test_clock_skew_and_expiry_of_a_cached_token() -> None:
    now = [time.time()]
    verifier = JwtVerifier(_policy(), clock=lambda: now[0])
    token = jwt.encode(_claims(exp=int(now[0]) - 10), SECRET, "HS256").encode()
    assert verifier.verify(token).name == "ada"  # 10 s late is within the 30 s of skew
    now[0] += 60
    with pytest.raises(TokenExpired):
        verifier.verify(token)  # from the cache: still checked


def test_wrong_secret_missing_claims_and_algorithms() -> None:
    wrong = jwt.encode(_claims(), b"another-secret-that-is-long-enough!!", "HS256").encode()
    with pytest.raises(InvalidToken, match="not valid"):
        JwtVerifier(_policy()).verify(wrong)
    no_exp = {key: value for key, value in _claims().items() if key != "exp"}
    with pytest.raises(InvalidToken, match="exp"):
        JwtVerifier(_policy()).verify(jwt.encode(no_exp, SECRET, "HS256").encode())
    only_rs = JwtVerifier(_policy(algorithms=("RS256",)))
    with pytest.raises(InvalidToken, match="HS256"):
        only_rs.verify(jwt.encode(_claims(), SECRET, "HS256").encode())
    no_role = {key: value for key, value in _claims().items() if key != "nova_role"}
    token = jwt.encode(no_role, SECRET, "HS256").encode()
    with pytest.raises(InvalidToken):
        JwtVerifier(_policy()).verify(token)
    assert JwtVerifier(_policy(default_role=Role.VIEWER)).verify(token).role is Role.VIEWER


def test_rs256_with_a_jwks_file(tmp_path: Path) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig"}]}))
    verifier = JwtVerifier(_policy(jwks=load_jwks(tmp_path / "jwks.json")))
    token = jwt.encode(_claims(), private, "RS256", headers={"kid": "k1"}).encode()
    assert verifier.verify(token).role is Role.DEVELOPER
    forged = jwt.encode(_claims(), other, "RS256", headers={"kid": "k1"}).encode()
    with pytest.raises(InvalidToken):
        verifier.verify(forged)
    unknown = jwt.encode(_claims(), private, "RS256", headers={"kid": "k9"}).encode()
    with pytest.raises(InvalidToken, match="k9"):
        verifier.verify(unknown)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="no usable key"):
        load_jwks(tmp_path / "bad.json")
