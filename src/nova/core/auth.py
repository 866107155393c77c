"""API keys as the rest of Nova sees them: roles, permissions, scopes, records and errors.

A key has a role (what it may do, from the permission table in :mod:`nova.auth.permissions`)
and a scope (which functions it may see: ``*`` for all, else glob patterns such as
``orders-*``). A function outside a key's scope is answered as if it did not exist, so names do
not leak. The key itself (``nova_<id>_<secret>``) is shown once at creation; the store keeps
only its keyed hash.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from nova.core.errors import NovaError, RequestInvalid
from nova.core.tenancy import Environment

KEY_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,62}$"
_KEY_NAME = re.compile(KEY_NAME_PATTERN)
_SCOPE_PATTERN = re.compile(r"^[a-z0-9*?\[\]-]{1,63}$")
ALL_FUNCTIONS = "*"


class Role(StrEnum):
    ADMIN = "admin"
    DEVELOPER = "developer"
    INVOKER = "invoker"
    VIEWER = "viewer"


class Permission(StrEnum):
    INVOKE = "functions:invoke"
    READ = "functions:read"
    WRITE = "functions:write"
    SECRETS_READ = "secrets:read"
    SECRETS_WRITE = "secrets:write"
    KEYS = "keys:manage"
    AUDIT = "audit:read"
    ADMIN = "admin"  # operator tasks: master-key rotation, runtime images, registered runtimes


def validate_key_name(name: str) -> str:
    if not _KEY_NAME.fullmatch(name):
        raise RequestInvalid(
            f"name: {name[:80]!r} is not a valid key name; use 1-63 lower-case letters, digits "
            "and '-', starting with a letter"
        )
    return name


def parse_scope(scope: str) -> tuple[str, ...]:
    """``*`` or comma-separated function-name globs (``orders-*,billing``)."""
    patterns = tuple(part.strip() for part in scope.split(",") if part.strip())
    if not patterns:
        raise RequestInvalid("scope: give '*' (every function) or function-name patterns")
    for pattern in patterns:
        if not _SCOPE_PATTERN.fullmatch(pattern):
            raise RequestInvalid(
                f"scope: {pattern[:80]!r} is not a function-name pattern; use names with "
                "'*' and '?' wildcards, separated by commas"
            )
    return patterns


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as stored: never the key itself, only its keyed hash."""

    id: str
    name: str
    role: Role
    scope: tuple[str, ...]
    key_hash: str
    enabled: bool
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    # The key's secret sealed for AWS-style signing (nova.auth.sigv4); None: JWT principals.
    sealed_secret: bytes | None = None
    # The one environment the key acts in; None: every environment, chosen per request with
    # the X-Nova-Environment header (the admin key made on first start).
    environment: Environment | None = None

    @property
    def unscoped(self) -> bool:
        return ALL_FUNCTIONS in self.scope

    def sees(self, function: str) -> bool:
        """Whether ``function`` is inside the key's scope."""
        return self.unscoped or any(fnmatch.fnmatchcase(function, p) for p in self.scope)

    def acts_in(self, environment: Environment) -> bool:
        """Whether the key may act in ``environment`` (a key of every environment may)."""
        return self.environment is None or self.environment == environment


class AuthError(NovaError):
    """401: the request did not prove who sent it. ``WWW-Authenticate`` goes with it."""

    code = "Auth.InvalidKey"
    status = 401


class MissingCredentials(AuthError):
    code = "Auth.MissingCredentials"

    def __init__(self) -> None:
        super().__init__(
            "this endpoint needs an API key: send 'Authorization: Bearer <key>' or "
            "'X-API-Key: <key>' (the admin key is in <data dir>/admin-key; create others "
            "with `nova key create`)"
        )


class InvalidKey(AuthError):
    code = "Auth.InvalidKey"

    def __init__(self) -> None:
        super().__init__(
            "the API key is not valid (mistyped, deleted, or from another Nova); list keys "
            "with `nova key list` or create one with `nova key create`"
        )


class KeyExpired(AuthError):
    code = "Auth.Expired"

    def __init__(self, name: str) -> None:
        super().__init__(f"API key {name!r} has expired; create a new one with `nova key create`")


class KeyDisabled(AuthError):
    code = "Auth.KeyDisabled"

    def __init__(self, name: str) -> None:
        super().__init__(
            f"API key {name!r} is disabled; an admin can enable it with `nova key enable {name}`"
        )


class Forbidden(NovaError):
    """403: the key is valid but its role lacks the permission."""

    code = "Auth.Forbidden"
    status = 403

    def __init__(self, role: Role, permission: Permission) -> None:
        super().__init__(
            f"a {role.value} key may not do this (it needs {permission.value}); use a key "
            "whose role has it (see the permission table in the README)"
        )


class OutOfScope(NovaError):
    """404 for a request a scoped key may not see at all: it must not learn what exists."""

    code = "Route.NotFound"
    status = 404

    def __init__(self) -> None:
        super().__init__("nothing here for this API key (it is limited to some functions)")


class KeyNotFound(NovaError):
    code = "Key.NotFound"
    status = 404

    def __init__(self, name: str) -> None:
        super().__init__(f"API key {name!r} does not exist; list them with `nova key list`")


class KeyAlreadyExists(NovaError):
    code = "Key.AlreadyExists"
    status = 409

    def __init__(self, name: str) -> None:
        super().__init__(
            f"an API key named {name!r} already exists; pick another name or delete it first"
        )


class LastAdminKey(NovaError):
    code = "Key.LastAdmin"
    status = 409

    def __init__(self, name: str) -> None:
        super().__init__(
            f"{name!r} is the last enabled admin key: without it nobody could manage keys; "
            "create another admin key first"
        )
