"""Custom HTTP routes and function URL settings in SQL (the ``RouteRepository`` port)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from nova.core.errors import FunctionNotFound
from nova.core.triggers import (
    FunctionUrlConfig,
    Route,
    RouteConflict,
    RouteNotFound,
    RouteSpec,
    TriggerAuth,
)
from nova.store.database import Database
from nova.store.schema import function_urls, functions, http_routes
from nova.store.triggers_codec import signature_document, signature_from

_r = http_routes.c
_u = function_urls.c


class SqlRouteRepository:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def add(self, method: str, path_prefix: str, spec: RouteSpec) -> Route:
        route = Route(str(uuid.uuid4()), method, path_prefix, spec, datetime.now(UTC))
        try:
            async with self._db.transaction(write_lock=True) as conn:  # reads, then writes
                function_id = await function_id_of(conn, spec.function)
                await conn.execute(
                    sa.insert(http_routes),
                    {
                        "id": route.id,
                        "method": method,
                        "path_prefix": path_prefix,
                        "function_id": function_id,
                        "function_name": spec.function,
                        "qualifier": spec.qualifier,
                        "auth": spec.auth.value,
                        "signature": signature_document(spec.signature),
                        "created_at": route.created_at,
                    },
                )
        except IntegrityError:
            raise RouteConflict(method, path_prefix) from None
        return route

    async def get(self, route_id: str) -> Route:
        async with self._db.transaction() as conn:
            row = (await conn.execute(sa.select(http_routes).where(_r.id == route_id))).first()
        if row is None:
            raise RouteNotFound(route_id)
        return _route(row._mapping)

    async def all(self) -> list[Route]:
        query = sa.select(http_routes).order_by(_r.path_prefix, _r.method)
        async with self._db.transaction() as conn:
            rows = (await conn.execute(query)).all()
        return [_route(row._mapping) for row in rows]

    async def delete(self, route_id: str) -> Route:
        async with self._db.transaction() as conn:
            row = (
                await conn.execute(
                    sa.delete(http_routes).where(_r.id == route_id).returning(*http_routes.c)
                )
            ).first()
        if row is None:
            raise RouteNotFound(route_id)
        return _route(row._mapping)

    async def put_url(self, config: FunctionUrlConfig) -> FunctionUrlConfig:
        values = {
            "auth": config.auth.value,
            "signature": signature_document(config.signature),
            "updated_at": datetime.now(UTC),
        }
        async with self._db.transaction(write_lock=True) as conn:
            function_id = await function_id_of(conn, config.function)
            changed = await conn.execute(
                sa.update(function_urls).where(_u.function_id == function_id).values(values)
            )
            if not changed.rowcount:
                await conn.execute(sa.insert(function_urls), {**values, "function_id": function_id})
        return config

    async def urls(self) -> list[FunctionUrlConfig]:
        query = sa.select(functions.c.name, _u.auth, _u.signature).join(
            functions, functions.c.id == _u.function_id
        )
        async with self._db.transaction() as conn:
            rows = (await conn.execute(query)).all()
        return [
            FunctionUrlConfig(row.name, TriggerAuth(row.auth), signature_from(row.signature))
            for row in rows
        ]


async def function_id_of(conn: AsyncConnection, name: str) -> str:
    function_id = await conn.scalar(sa.select(functions.c.id).where(functions.c.name == name))
    if function_id is None:
        raise FunctionNotFound(name)
    return str(function_id)


def _route(row: Any) -> Route:
    spec = RouteSpec(
        row["function_name"],
        row["qualifier"],
        TriggerAuth(row["auth"]),
        signature_from(row["signature"]),
    )
    return Route(row["id"], row["method"], row["path_prefix"], spec, row["created_at"])
