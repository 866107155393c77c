"""Persistence: repository ports, their SQL implementation (SQLite or PostgreSQL) and migrations.

SQL never leaves this package. Callers get a :class:`Store` from
:func:`nova.store.sql_store.open_store` (the daemon) or use :class:`~nova.store.memory.MemoryStore`
in unit tests. The package itself imports only the ports, so that the invocation-log writer
process (``sqlite_log_writer``) starts without loading SQLAlchemy.
"""

from nova.store.ports import FunctionRepository, InvocationLogRepository, Store

__all__ = ["FunctionRepository", "InvocationLogRepository", "Store"]
