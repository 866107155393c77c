"""Persistence: repository ports, their SQL implementation (SQLite or PostgreSQL) and migrations.

SQL never leaves this package. Callers get a :class:`Store` from :func:`open_store` (the daemon)
or use :class:`~nova.store.memory.MemoryStore` in unit tests.
"""

from nova.store.ports import FunctionRepository, InvocationLogRepository, Store
from nova.store.sql_store import open_store

__all__ = ["FunctionRepository", "InvocationLogRepository", "Store", "open_store"]
