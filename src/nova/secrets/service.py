"""What the API and the pool ask of secrets: set, list, delete, resolve an env, rotate the key.

Values exist in clear only in three places: the request that sets one (until it is sealed), the
environment an instance starts with (resolve), and the instance itself. They are never logged,
never put in an error message (errors name the secret, not its value) and never returned.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from nova.core.errors import RequestInvalid
from nova.core.models import Page
from nova.core.secrets import (
    MAX_SECRET_BYTES,
    MasterKeyManaged,
    SecretInfo,
    SecretMissing,
    secret_refs,
    validate_secret_name,
)
from nova.core.tenancy import Environment, environment_of, secret_environment
from nova.secrets.keyring import Keyring, MasterKey
from nova.secrets.master_key import KeySource, replace_key_file, write_key_file
from nova.store.ports import DEFAULT_PAGE_LIMIT, SecretRepository

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Rotation:
    key_id: str
    secrets: int  # how many were re-encrypted


class SecretService:
    def __init__(
        self,
        repository: SecretRepository,
        source: KeySource,
        on_change: Callable[[str], object],
    ) -> None:
        """``on_change(name)`` runs after a secret was set or deleted through this daemon (the
        pools replace the instances that use it; other daemons learn it from the change log)."""
        self._repository = repository
        self._source = source
        self._keyring = Keyring(source.key)
        self._on_change = on_change
        self._lock = asyncio.Lock()  # a rotation and the writes it must not interleave with

    @property
    def key_id(self) -> str:
        return self._keyring.primary.key_id

    async def start(self) -> None:
        """Finish a rotation that a stopped daemon left half done (its .new key file)."""
        pending = self._source.pending
        if pending is not None:
            logger.warning(
                "finishing the master-key rotation to %s left unfinished", pending.key_id
            )
            await self._rotate_to(pending)

    async def set(self, name: str, value: str) -> tuple[SecretInfo, bool]:
        """``name``: as stored (``Environment.secret_name``)."""
        validate_secret_name(secret_environment(name)[1])
        if "\0" in value:
            raise RequestInvalid("value: a secret goes into an environment and cannot hold NUL")
        if len(value.encode()) > MAX_SECRET_BYTES:
            raise RequestInvalid(f"value: a secret may have at most {MAX_SECRET_BYTES} bytes")
        async with self._lock:
            result = await self._repository.put(self._keyring.seal(name, value))
        self._on_change(name)
        return result

    async def list(
        self,
        environment: Environment,
        *,
        limit: int = DEFAULT_PAGE_LIMIT,
        cursor: str | None = None,
    ) -> Page[SecretInfo]:
        """The secrets of ``environment`` (under their stored names)."""
        return await self._repository.list(limit=limit, cursor=cursor, environment=environment)

    async def delete(self, name: str) -> SecretInfo:
        validate_secret_name(secret_environment(name)[1])
        info = await self._repository.delete(name)
        self._on_change(name)
        return info

    async def resolve(self, function: str, env: Mapping[str, str]) -> dict[str, str]:
        """``env`` with every ``$SECRET:name`` value replaced by the value of the secret
        ``name`` of ``function``'s environment; ``SecretMissing`` (naming the variable and the
        secret) when one is not set."""
        refs = secret_refs(env)
        if not refs:
            return dict(env)
        environment = environment_of(function)
        stored = await self._repository.get_many(
            {environment.secret_name(name) for name in refs.values()}
        )
        resolved = dict(env)
        for variable, name in refs.items():
            sealed = stored.get(environment.secret_name(name))
            if sealed is None:
                raise SecretMissing(function, variable, name)
            resolved[variable] = self._keyring.open(sealed)
        return resolved

    async def rotate(self, new_key: str | None = None) -> Rotation:
        """Re-encrypt every secret under a new master key, in one transaction. With a key file
        the new key is generated and replaces the file; with NOVA_MASTER_KEY the operator gives
        it (``new_key``) and sets NOVA_MASTER_KEY to it before the next start."""
        if self._source.file is None and not new_key:
            raise MasterKeyManaged(
                "the master key comes from NOVA_MASTER_KEY: give the new key "
                "(`nova admin rotate-master-key --new-key-file FILE`), then set NOVA_MASTER_KEY "
                "to it before the daemon next starts"
            )
        try:
            key = MasterKey.parse(new_key) if new_key else MasterKey.generate()
        except ValueError as exc:
            raise RequestInvalid(f"new_key: {exc}") from None
        return await self._rotate_to(key)

    async def _rotate_to(self, key: MasterKey) -> Rotation:
        async with self._lock:
            pending = self._source.pending_file
            if pending is not None and self._source.pending is not key:
                await asyncio.to_thread(write_key_file, pending, key)
            previous, keyring = self._keyring, self._keyring.rotated(key)
            # Starts resolving secrets meanwhile must open rows under either key (sets wait
            # for the lock); if the transaction fails, no row changed and the old key stays.
            self._keyring = keyring
            try:
                count = await self._repository.reseal_all(
                    lambda sealed: (
                        key.seal(sealed.name, previous.open(sealed))
                        if sealed.key_id != key.key_id
                        else sealed
                    )
                )
            except BaseException:
                self._keyring = previous
                raise
            if pending is not None and self._source.file is not None:
                await asyncio.to_thread(replace_key_file, pending, self._source.file)
            self._source = KeySource(key, self._source.file)
        logger.info("master key rotated to %s: %d secret(s) re-encrypted", key.key_id, count)
        if self._source.file is None:
            logger.warning(
                "set NOVA_MASTER_KEY to the new key (id %s) before this daemon next starts, "
                "and on every daemon sharing the store",
                key.key_id,
            )
        return Rotation(key.key_id, count)
