"""The store's ports for authentication: API keys (stored as keyed hashes) and the append-only
audit log. Contracts as in :mod:`nova.store.ports`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from nova.core.audit import AuditEntry, AuditFilter
from nova.core.auth import ApiKey
from nova.core.models import Page
from nova.store.ports import DEFAULT_PAGE_LIMIT


class ApiKeyRepository(Protocol):
    """API keys (hashes only). Every create, change and delete appends a ``key.changed``
    entry to the change log, so every daemon reloads its cache of keys."""

    async def create(self, key: ApiKey) -> ApiKey:
        """``KeyAlreadyExists`` when the name is taken."""
        ...

    async def get(self, name: str) -> ApiKey:
        """``KeyNotFound``."""
        ...

    async def all(self) -> list[ApiKey]:
        """Every key, by name (there are few: verifiers hold them all in memory)."""
        ...

    async def set_enabled(self, name: str, enabled: bool) -> ApiKey: ...

    async def delete(self, name: str) -> ApiKey: ...

    async def touch(self, last_used: Mapping[str, datetime]) -> None:
        """Record when keys (by id) were last used; no change-log entry (it changes no
        permission, and verifiers write it in batches)."""
        ...


class AuditRepository(Protocol):
    async def add_many(self, entries: Sequence[AuditEntry]) -> None:
        """Append entries (the store numbers them); nothing ever changes or removes one."""
        ...

    async def list(
        self, selection: AuditFilter, *, limit: int = DEFAULT_PAGE_LIMIT, cursor: str | None = None
    ) -> Page[AuditEntry]:
        """Newest first."""
        ...
