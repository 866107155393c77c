"""API keys in SQL (the ``ApiKeyRepository`` port): names, roles, scopes and keyed hashes.

A create, change or delete appends a ``key.changed`` entry to the change log in the same
transaction, so every daemon's verifier reloads its keys (nova.auth.verifier).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from nova.core.auth import ApiKey, KeyAlreadyExists, KeyNotFound, Role
from nova.core.changes import ChangeKind
from nova.core.tenancy import parse_environment
from nova.store.changes import record_change
from nova.store.database import Database
from nova.store.schema import api_keys

_k = api_keys.c


class SqlApiKeyRepository:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def create(self, key: ApiKey) -> ApiKey:
        try:
            async with self._db.transaction(write_lock=True) as conn:
                await conn.execute(api_keys.insert(), _row(key))
                await record_change(conn, ChangeKind.KEY_CHANGED, "", "", api_key=key.id)
        except IntegrityError as exc:
            raise KeyAlreadyExists(key.name) from exc
        return key

    async def get(self, name: str) -> ApiKey:
        async with self._db.transaction() as conn:
            row = (await conn.execute(sa.select(api_keys).where(_k.name == name))).first()
        if row is None:
            raise KeyNotFound(name)
        return _key(row)

    async def all(self) -> list[ApiKey]:
        async with self._db.transaction() as conn:
            rows = (await conn.execute(sa.select(api_keys).order_by(_k.name))).all()
        return [_key(row) for row in rows]

    async def set_enabled(self, name: str, enabled: bool) -> ApiKey:
        update = sa.update(api_keys).where(_k.name == name).values(enabled=enabled)
        return await self._change(name, update.returning(api_keys))

    async def delete(self, name: str) -> ApiKey:
        return await self._change(
            name, sa.delete(api_keys).where(_k.name == name).returning(api_keys)
        )

    async def _change(self, name: str, statement: sa.Executable) -> ApiKey:
        """Run a change of the key ``name`` returning its row, with its change-log entry."""
        async with self._db.transaction(write_lock=True) as conn:
            row = (await conn.execute(statement)).first()
            if row is None:
                raise KeyNotFound(name)
            await record_change(conn, ChangeKind.KEY_CHANGED, "", "", api_key=row.id)
        return _key(row)

    async def touch(self, last_used: Mapping[str, datetime]) -> None:
        if not last_used:
            return
        statement = (
            sa.update(api_keys)
            .where(_k.id == sa.bindparam("key_id"))
            .values(last_used_at=sa.bindparam("used"))
        )
        rows = [{"key_id": key_id, "used": at} for key_id, at in last_used.items()]
        async with self._db.transaction(write_lock=True) as conn:
            await conn.execute(statement, rows)


def _row(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "role": key.role.value,
        "scope": ",".join(key.scope),
        "key_hash": key.key_hash,
        "enabled": key.enabled,
        "created_at": key.created_at,
        "expires_at": key.expires_at,
        "last_used_at": key.last_used_at,
        "secret_sealed": key.sealed_secret,
        "environment": key.environment.path if key.environment is not None else None,
    }


def _key(row: Any) -> ApiKey:
    return ApiKey(
        id=row.id,
        name=row.name,
        role=Role(row.role),
        scope=tuple(row.scope.split(",")),
        key_hash=row.key_hash,
        enabled=row.enabled,
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        sealed_secret=bytes(row.secret_sealed) if row.secret_sealed is not None else None,
        environment=parse_environment(row.environment) if row.environment is not None else None,
    )
