"""Verifying API keys per request: one HMAC and a dict lookup, no store read.

Every key is held in memory by its keyed hash (there are few). The cache is reloaded when the
change log names a key (the follower calls :meth:`KeyVerifier.reload`), so a key created,
disabled or deleted through any daemon takes effect everywhere within the follower's poll.
A token that matches nothing may be a key created a moment ago through another daemon: it
reloads the cache once, at most once a second, so random tokens cannot flood the store.

A token seen once is remembered with its key until the next reload, so a client's later
requests cost a dict lookup without the HMAC.

When a key was last used is kept in memory and written in one batch every ``touch_every_s``
(and at close): a store write per request would cost more than the request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from nova.auth.sigv4 import SecretSealer, UnrecognizedClient
from nova.auth.tokens import TokenHasher
from nova.core.auth import ApiKey, InvalidKey, KeyDisabled, KeyExpired
from nova.core.periodic import Periodic
from nova.store.auth_ports import ApiKeyRepository

logger = logging.getLogger(__name__)

MISS_RELOAD_EVERY_S = 1.0
SEEN_MAX = 10_000  # tokens remembered after their first hash (then all are forgotten)


class KeyVerifier:
    def __init__(
        self,
        keys: ApiKeyRepository,
        pepper: bytes,
        *,
        touch_every_s: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keys
        self._hash = TokenHasher(pepper)
        self._clock = clock
        self._by_hash: dict[bytes, ApiKey] = {}
        self._by_id: dict[str, ApiKey] = {}
        # Tokens already hashed -> their key: a client's next requests skip the HMAC. Emptied
        # at every reload, so a deleted or changed key is never served from here.
        self._seen: dict[bytes, ApiKey] = {}
        self._sealer = SecretSealer(pepper)
        self._secrets: dict[str, str] = {}  # key id -> secret, opened once
        self._used: dict[str, float] = {}  # key id -> when, not yet written
        self._reload_lock = asyncio.Lock()
        self._reloaded_at = 0.0
        self._toucher = Periodic(
            "api-key-last-use", touch_every_s, self.flush, logger, "cannot record key use"
        )

    async def start(self) -> None:
        await self.reload()
        self._toucher.start()

    async def reload(self) -> None:
        """Read every key again (a key changed somewhere)."""
        async with self._reload_lock:
            keys = await self._keys.all()
            self._by_hash = {bytes.fromhex(key.key_hash): key for key in keys}
            self._by_id = {key.id: key for key in keys}
            self._secrets = {}
            self._seen = {}
            self._reloaded_at = time.monotonic()

    def lookup(self, token: bytes) -> ApiKey | None:
        """The key ``token`` is, without checking that it is usable; None if none."""
        key = self._seen.get(token)
        if key is None:
            key = self._by_hash.get(self._hash(token))
            if key is not None:
                if len(self._seen) >= SEEN_MAX:
                    self._seen.clear()
                self._seen[token] = key
        return key

    def check(self, key: ApiKey) -> ApiKey:
        """``key`` if it may be used now (and note its use); else the 401 to answer."""
        if not key.enabled:
            raise KeyDisabled(key.name)
        now = self._clock()
        if key.expires_at is not None and key.expires_at.timestamp() <= now:
            raise KeyExpired(key.name)
        self._used[key.id] = now
        return key

    async def verify(self, token: bytes) -> ApiKey:
        """The usable key ``token`` is; ``InvalidKey``, ``KeyDisabled`` or ``KeyExpired``."""
        key = self.lookup(token)
        if key is None and time.monotonic() - self._reloaded_at > MISS_RELOAD_EVERY_S:
            await self.reload()
            key = self.lookup(token)
        if key is None:
            raise InvalidKey()
        return self.check(key)

    async def by_access_key(self, key_id: str) -> tuple[ApiKey, str]:
        """The usable key of an AWS access key id and its secret (for SigV4); the same
        refusals as :meth:`verify`."""
        key = self._by_id.get(key_id)
        if key is None and time.monotonic() - self._reloaded_at > MISS_RELOAD_EVERY_S:
            await self.reload()
            key = self._by_id.get(key_id)
        if key is None or key.sealed_secret is None:
            raise UnrecognizedClient()
        secret = self._secrets.get(key.id)
        if secret is None:
            secret = self._secrets[key.id] = self._sealer.open(key.id, key.sealed_secret)
        return self.check(key), secret

    def last_used_at(self, key: ApiKey) -> datetime | None:
        """When ``key`` was last used, counting uses not yet written to the store."""
        pending = self._used.get(key.id)
        return datetime.fromtimestamp(pending, UTC) if pending is not None else key.last_used_at

    async def flush(self) -> None:
        """Write when keys were last used since the previous flush."""
        if not self._used:
            return
        used, self._used = self._used, {}
        await self._keys.touch(
            {key_id: datetime.fromtimestamp(at, UTC) for key_id, at in used.items()}
        )

    async def close(self) -> None:
        await self._toucher.close()
        await self.flush()
