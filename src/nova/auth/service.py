"""The API-key lifecycle: create (the key is shown once), list, disable, enable, delete, and
the admin key a daemon creates on its first start."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from nova.auth.sigv4 import SecretSealer
from nova.auth.tokens import new_token, token_hash, write_secret_file
from nova.core.auth import (
    ApiKey,
    KeyAlreadyExists,
    LastAdminKey,
    Role,
    parse_scope,
    validate_key_name,
)
from nova.core.errors import RequestInvalid
from nova.core.tenancy import Environment
from nova.store.auth_ports import ApiKeyRepository

logger = logging.getLogger(__name__)

ADMIN_KEY_NAME = "admin"


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key just created, with the only copy of its token."""

    key: ApiKey
    token: str
    secret: str  # the token's secret part: with the key's id, an AWS secret access key


class KeyService:
    def __init__(
        self,
        keys: ApiKeyRepository,
        pepper: bytes,
        changed: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """``changed()`` runs after every change made here: this daemon's verifier reloads at
        once (the others when their follower reads the change log)."""
        self._keys = keys
        self._pepper = pepper
        self._sealer = SecretSealer(pepper)
        self._changed = changed

    async def _after_change(self, key: ApiKey) -> ApiKey:
        if self._changed is not None:
            await self._changed()
        return key

    async def create(
        self,
        name: str,
        role: str,
        scope: str = "*",
        expires_in_s: float | None = None,
        environment: Environment | None = None,
    ) -> NewKey:
        """``environment``: the one the key acts in; None: every environment."""
        validate_key_name(name)
        try:
            parsed_role = Role(role)
        except ValueError:
            roles = ", ".join(r.value for r in Role)
            raise RequestInvalid(f"role: {role[:40]!r} is not a role; use one of {roles}") from None
        patterns = parse_scope(scope)
        if expires_in_s is not None and expires_in_s <= 0:
            raise RequestInvalid("expires_in_s: must be positive (omit it for a key that lasts)")
        now = datetime.now(UTC)
        key_id, secret, token = new_token()
        key = ApiKey(
            id=key_id,
            name=name,
            role=parsed_role,
            scope=patterns,
            key_hash=token_hash(self._pepper, token.encode()).hex(),
            enabled=True,
            created_at=now,
            expires_at=None if expires_in_s is None else now + timedelta(seconds=expires_in_s),
            sealed_secret=self._sealer.seal(key_id, secret),
            environment=environment,
        )
        return NewKey(await self._after_change(await self._keys.create(key)), token, secret)

    async def list(self) -> list[ApiKey]:
        return await self._keys.all()

    async def get(self, name: str) -> ApiKey:
        return await self._keys.get(name)

    async def disable(self, name: str) -> ApiKey:
        await self._keep_an_admin(name)
        return await self._after_change(await self._keys.set_enabled(name, False))

    async def enable(self, name: str) -> ApiKey:
        return await self._after_change(await self._keys.set_enabled(name, True))

    async def delete(self, name: str) -> ApiKey:
        await self._keep_an_admin(name)
        return await self._after_change(await self._keys.delete(name))

    async def _keep_an_admin(self, name: str) -> None:
        """Refuse to lock everyone out: the last enabled admin key of every environment stays
        (only such a key can manage keys and environments everywhere)."""
        key = await self._keys.get(name)
        if key.role is not Role.ADMIN or not key.enabled or key.environment is not None:
            return
        admins = [
            k
            for k in await self._keys.all()
            if k.role is Role.ADMIN and k.enabled and k.environment is None
        ]
        if len(admins) <= 1:
            raise LastAdminKey(name)

    async def bootstrap(self, admin_key_file: Path) -> str | None:
        """On a store without keys: create the admin key, write it to ``admin_key_file``
        (mode 0600) and return it (the caller shows it once). None when keys exist."""
        if await self._keys.all():
            return None
        try:
            created = await self.create(ADMIN_KEY_NAME, Role.ADMIN.value)
        except KeyAlreadyExists:
            return None  # another daemon on the same store created it a moment ago
        write_secret_file(admin_key_file, created.token)
        logger.info(
            "created admin API key %s; it is in %s (mode 0600)", created.key.id, admin_key_file
        )
        return created.token
