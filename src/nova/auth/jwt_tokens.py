"""JSON Web Tokens as credentials: HS256 (a shared secret) and RS256 (public keys from a JWKS
file), with issuer, audience, expiry, not-before and clock skew checked by PyJWT.

A verified token becomes the same principal an API key is (an :class:`ApiKey` with the id
``jwt:<sub>``), its role and scope read from configurable claims, so permissions, scopes, rate
limits and the audit log treat both alike. Verified tokens are cached until they expire (at most
``_CACHE_SIZE``), so a client sending the same token again costs a dict lookup, not a signature
check (~40 µs for HS256, more for RS256).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt

from nova.core.auth import ALL_FUNCTIONS, ApiKey, AuthError, Role, parse_scope
from nova.core.errors import NovaError
from nova.core.tenancy import parse_environment

_CACHE_SIZE = 10_000


class InvalidToken(AuthError):
    code = "Auth.InvalidToken"


class TokenExpired(AuthError):
    code = "Auth.Expired"

    def __init__(self, subject: str) -> None:
        super().__init__(f"the token of {subject!r} has expired; get a new one from its issuer")


@dataclass(frozen=True, slots=True)
class JwtPolicy:
    """What a token must be, and how its claims map to a role and a scope."""

    algorithms: tuple[str, ...]
    hs256_secret: bytes | None
    jwks: jwt.PyJWKSet | None
    issuer: str | None
    audience: str | None
    leeway_s: float
    role_claim: str
    scope_claim: str
    environment_claim: str
    role_map: Mapping[str, Role]  # claim value -> role (the role names map to themselves)
    default_role: Role | None  # a token without the role claim; None: refused


def load_jwks(path: Path) -> jwt.PyJWKSet:
    """RS256 public keys from a JWKS file (``{"keys": [...]}``); ValueError when unusable."""
    try:
        return jwt.PyJWKSet.from_json(path.read_text())
    except OSError as exc:
        raise ValueError(f"cannot read the JWKS file {path}: {exc.strerror}") from None
    except (jwt.PyJWKSetError, jwt.PyJWKError, json.JSONDecodeError) as exc:
        raise ValueError(f"the JWKS file {path} holds no usable key: {exc}") from None


def looks_like_jwt(token: bytes) -> bool:
    """Three base64url parts, the first a JSON object (``eyJ`` is ``{"`` encoded)."""
    return token.startswith(b"eyJ") and token.count(b".") == 2


class JwtVerifier:
    def __init__(self, policy: JwtPolicy, clock: Callable[[], float] = time.time) -> None:
        self._policy = policy
        self._clock = clock
        self._cache: dict[bytes, ApiKey] = {}

    def verify(self, token: bytes) -> ApiKey:
        """The principal of a valid token; ``InvalidToken`` or ``KeyExpired`` otherwise."""
        principal = self._cache.get(token)
        if principal is not None:
            if principal.expires_at is not None and principal.expires_at.timestamp() <= (
                self._clock() - self._policy.leeway_s
            ):
                del self._cache[token]
                raise TokenExpired(principal.name)
            return principal
        principal = self._decode(token)
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.clear()  # simpler than LRU; refilling costs one check per client
        self._cache[token] = principal
        return principal

    def _decode(self, token: bytes) -> ApiKey:
        policy = self._policy
        try:
            header = jwt.get_unverified_header(token)
            algorithm = header.get("alg")
            if algorithm not in policy.algorithms:
                raise InvalidToken(
                    f"the token is signed with {algorithm!r}; this Nova accepts "
                    f"{', '.join(policy.algorithms)}"
                )
            claims = jwt.decode(
                token,
                self._key(algorithm, header.get("kid")),
                algorithms=[algorithm],
                audience=policy.audience,
                issuer=policy.issuer,
                leeway=policy.leeway_s,
                options={"require": ["exp", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenExpired(_subject(token)) from None
        except jwt.InvalidAudienceError:
            raise InvalidToken(f"the token is not for audience {policy.audience!r}") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken(f"the token is not from issuer {policy.issuer!r}") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("the token is not valid yet (nbf is in the future)") from None
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"the token is not valid: {exc}") from None
        return self._principal(claims)

    def _key(self, algorithm: str, kid: object) -> Any:
        policy = self._policy
        if algorithm == "HS256":
            if policy.hs256_secret is None:
                raise InvalidToken("HS256 tokens need auth.jwt.hs256_secret on the daemon")
            return policy.hs256_secret
        keys = policy.jwks.keys if policy.jwks is not None else []
        matching = [key for key in keys if kid is None or key.key_id == kid]
        if not matching:
            raise InvalidToken(f"no key {kid!r} in the daemon's JWKS file (auth.jwt.jwks_file)")
        return matching[0]

    def _principal(self, claims: Mapping[str, Any]) -> ApiKey:
        policy = self._policy
        subject = str(claims["sub"])
        raw_role = claims.get(policy.role_claim)
        role = policy.role_map.get(str(raw_role)) if raw_role is not None else policy.default_role
        if role is None:
            raise InvalidToken(
                f"the token's {policy.role_claim!r} claim ({raw_role!r}) maps to no role; "
                "see auth.jwt.role_map"
            )
        raw_scope = claims.get(policy.scope_claim, ALL_FUNCTIONS)
        scope = ",".join(raw_scope) if isinstance(raw_scope, list) else str(raw_scope)
        try:
            patterns = parse_scope(scope)
        except NovaError as exc:
            raise InvalidToken(f"the token's {policy.scope_claim!r} claim: {exc.message}") from None
        raw_environment = str(claims.get(policy.environment_claim, "*"))
        try:
            environment = None if raw_environment == "*" else parse_environment(raw_environment)
        except NovaError as exc:
            raise InvalidToken(
                f"the token's {policy.environment_claim!r} claim: {exc.message}"
            ) from None
        issued = claims.get("iat")
        return ApiKey(
            id=f"jwt:{subject}"[:200],
            name=subject[:200],
            role=role,
            scope=patterns,
            key_hash="",
            enabled=True,
            created_at=datetime.fromtimestamp(float(issued) if issued else 0, UTC),
            expires_at=datetime.fromtimestamp(float(claims["exp"]), UTC),
            environment=environment,
        )


def _subject(token: bytes) -> str:
    """The ``sub`` of a token whose signature was checked but which expired (for messages)."""
    try:
        return str(jwt.decode(token, options={"verify_signature": False}).get("sub", "?"))
    except jwt.PyJWTError:
        return "?"
