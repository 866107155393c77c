"""Encrypted secrets in SQL (the ``SecretRepository`` port).

Rows hold ciphertext only: sealing and opening happen above the store (nova.secrets), which
alone has the master key. Setting or deleting a secret appends a ``secret.changed`` entry to the
change log in the same transaction, so every daemon replaces the instances that use it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from nova.core.changes import ChangeKind
from nova.core.models import Page
from nova.core.secrets import SealedSecret, SecretInfo, SecretNotFound
from nova.core.tenancy import Environment
from nova.store import cursors
from nova.store.changes import record_change
from nova.store.database import Database
from nova.store.ports import DEFAULT_PAGE_LIMIT
from nova.store.schema import secrets
from nova.store.tenancy_sql import secret_in_environment

_s = secrets.c
_INFO = sa.select(_s.name, _s.created_at, _s.updated_at)


class SqlSecretRepository:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def put(self, sealed: SealedSecret) -> tuple[SecretInfo, bool]:
        now = datetime.now(UTC)
        values = {
            "ciphertext": sealed.ciphertext,
            "nonce": sealed.nonce,
            "key_id": sealed.key_id,
            "updated_at": now,
        }
        async with self._db.transaction(write_lock=True) as conn:
            row = (
                await conn.execute(
                    sa.update(secrets)
                    .where(_s.name == sealed.name)
                    .values(values)
                    .returning(_s.name, _s.created_at, _s.updated_at)
                )
            ).first()
            created = row is None
            if row is None:
                await conn.execute(
                    secrets.insert(), {**values, "name": sealed.name, "created_at": now}
                )
            await record_change(conn, ChangeKind.SECRET_CHANGED, "", "", secret=sealed.name)
        info = SecretInfo(sealed.name, now, now) if row is None else _info(row)
        return info, created

    async def get_many(self, names: Collection[str]) -> dict[str, SealedSecret]:
        query = sa.select(secrets).where(_s.name.in_(sorted(names)))
        async with self._db.transaction() as conn:
            rows = (await conn.execute(query)).all()
        return {row.name: _sealed(row) for row in rows}

    async def list(
        self,
        *,
        limit: int = DEFAULT_PAGE_LIMIT,
        cursor: str | None = None,
        environment: Environment | None = None,
    ) -> Page[SecretInfo]:
        cursors.check_limit(limit)
        query = _INFO.order_by(_s.name).limit(limit + 1)
        if environment is not None:
            query = query.where(secret_in_environment(_s.name, environment))
        if cursor is not None:
            (after,) = cursors.decode(cursor, cursors.SECRETS, 1)
            query = query.where(_s.name > after)
        async with self._db.transaction() as conn:
            rows = (await conn.execute(query)).all()
        items = [_info(row) for row in rows[:limit]]
        more = len(rows) > limit
        return Page(items, cursors.encode(cursors.SECRETS, items[-1].name) if more else None)

    async def delete(self, name: str) -> SecretInfo:
        statement = (
            sa.delete(secrets)
            .where(_s.name == name)
            .returning(_s.name, _s.created_at, _s.updated_at)
        )
        async with self._db.transaction(write_lock=True) as conn:
            row = (await conn.execute(statement)).first()
            if row is None:
                raise SecretNotFound(name)
            await record_change(conn, ChangeKind.SECRET_CHANGED, "", "", secret=name)
        return _info(row)

    async def reseal_all(self, reseal: Callable[[SealedSecret], SealedSecret]) -> int:
        # One transaction: either every row is under the new key or none is.
        async with self._db.transaction(write_lock=True) as conn:
            rows = (await conn.execute(sa.select(secrets))).all()
            for row in rows:
                sealed = reseal(_sealed(row))
                await conn.execute(
                    sa.update(secrets)
                    .where(_s.name == row.name)
                    .values(ciphertext=sealed.ciphertext, nonce=sealed.nonce, key_id=sealed.key_id)
                )
        return len(rows)


def _info(row: Any) -> SecretInfo:
    return SecretInfo(row.name, row.created_at, row.updated_at)


def _sealed(row: sa.Row[Any]) -> SealedSecret:
    return SealedSecret(row.name, bytes(row.ciphertext), bytes(row.nonce), row.key_id)
