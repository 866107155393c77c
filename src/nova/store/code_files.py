"""A function's files in SQL, one copy per code hash, shared by $LATEST and its versions.

Every write of a function's files happens inside a transaction that already holds the
function's row (an UPDATE of it, or its INSERT), so the writes of one function never race
each other and a hash's files are complete whenever a row names that hash.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from nova.core.models import CodeBundle, CodeFile
from nova.store.schema import code_files, function_versions, functions

_f = code_files.c


async def store_code(conn: AsyncConnection, function_id: str, code: CodeBundle) -> None:
    """Make ``code``'s files available under its hash (already there: nothing to do)."""
    code_hash = code.sha256
    present = await conn.execute(
        sa.select(sa.literal(1))
        .where(_f.function_id == function_id, _f.code_hash == code_hash)
        .limit(1)
    )
    if present.first() is not None or not code.files:
        return  # an executemany with no parameter sets is an error, not a no-op
    await conn.execute(
        code_files.insert(),
        [
            {
                "function_id": function_id,
                "code_hash": code_hash,
                "path": path,
                "content": item.content,
                "executable": item.executable,
            }
            for path, item in code.files.items()
        ],
    )


async def load_code(conn: AsyncConnection, function_id: str, code_hash: str) -> CodeBundle:
    rows = await conn.execute(
        sa.select(_f.path, _f.content, _f.executable)
        .where(_f.function_id == function_id, _f.code_hash == code_hash)
        .order_by(_f.path)
    )
    return CodeBundle(
        files={
            row.path: CodeFile(content=bytes(row.content), executable=bool(row.executable))
            for row in rows
        }
    )


async def drop_unused_code(conn: AsyncConnection, function_id: str) -> None:
    """Delete the files of hashes neither $LATEST nor any version of the function uses."""
    in_use = sa.union(
        sa.select(functions.c.code_hash).where(functions.c.id == function_id),
        sa.select(function_versions.c.code_hash).where(
            function_versions.c.function_id == function_id
        ),
    )
    await conn.execute(
        sa.delete(code_files).where(_f.function_id == function_id, _f.code_hash.not_in(in_use))
    )
