"""Environments in SQL (the ``EnvironmentRepository`` port)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from nova.core.quotas import Quotas
from nova.core.tenancy import (
    Environment,
    EnvironmentExists,
    EnvironmentNotEmpty,
    EnvironmentNotFound,
    parse_environment,
)
from nova.store.database import Database
from nova.store.schema import environments, functions, secrets
from nova.store.tenancy_ports import EnvironmentRecord
from nova.store.tenancy_sql import in_environment, secret_in_environment

_e = environments.c


class SqlEnvironmentRepository:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def create(self, record: EnvironmentRecord) -> EnvironmentRecord:
        row = {
            "path": record.environment.path,
            "quotas": quotas_document(record.quotas),
            "created_at": record.created_at,
        }
        try:
            async with self._db.transaction() as conn:
                await conn.execute(environments.insert(), row)
        except IntegrityError as exc:
            raise EnvironmentExists(record.environment.path) from exc
        return record

    async def get(self, environment: Environment) -> EnvironmentRecord:
        query = sa.select(environments).where(_e.path == environment.path)
        async with self._db.transaction() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            raise EnvironmentNotFound(environment.path)
        return _record(row)

    async def list(self) -> list[EnvironmentRecord]:
        async with self._db.transaction() as conn:
            rows = (await conn.execute(sa.select(environments).order_by(_e.path))).all()
        return [_record(row) for row in rows]

    async def set_quotas(self, environment: Environment, quotas: Quotas) -> EnvironmentRecord:
        statement = (
            sa.update(environments)
            .where(_e.path == environment.path)
            .values(quotas=quotas_document(quotas))
            .returning(environments)
        )
        async with self._db.transaction() as conn:
            row = (await conn.execute(statement)).first()
        if row is None:
            raise EnvironmentNotFound(environment.path)
        return _record(row)

    async def delete(self, environment: Environment) -> EnvironmentRecord:
        count = sa.select(sa.func.count())
        held = count.select_from(functions).where(in_environment(functions.c.name, environment))
        sealed = count.select_from(secrets).where(
            secret_in_environment(secrets.c.name, environment)
        )
        async with self._db.transaction(write_lock=True) as conn:
            held_functions = (await conn.execute(held)).scalar_one()
            held_secrets = (await conn.execute(sealed)).scalar_one()
            if held_functions or held_secrets:
                raise EnvironmentNotEmpty(environment.path, held_functions, held_secrets)
            statement = sa.delete(environments).where(_e.path == environment.path)
            row = (await conn.execute(statement.returning(environments))).first()
        if row is None:
            raise EnvironmentNotFound(environment.path)
        return _record(row)


def quotas_document(quotas: Quotas) -> dict[str, Any]:
    """The quotas that are set (a lifted one is absent)."""
    return {name: value for name, value in asdict(quotas).items() if value is not None}


def _record(row: sa.Row[Any]) -> EnvironmentRecord:
    return EnvironmentRecord(parse_environment(row.path), Quotas(**row.quotas), row.created_at)
