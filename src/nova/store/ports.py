"""The store's ports: what the rest of Nova may ask of persistence.

Everything above the store codes against these Protocols and the value types of
:mod:`nova.core.models`; no SQL, session or driver type ever crosses this line. Failures surface
as :mod:`nova.core.errors` values: ``FunctionNotFound``, ``FunctionAlreadyExists``,
``RequestInvalid`` (a malformed ``cursor`` or ``limit``) and ``StoreUnavailable`` (the database
cannot be reached, or the store was closed).

Lists are keyset-paginated: ``cursor`` is the opaque ``next`` of the previous page (``None`` for
the first page) and ``next`` is ``None`` on the last page.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from nova.core.models import CodeBundle, FunctionConfig, FunctionRecord, InvocationLog, Page

DEFAULT_PAGE_LIMIT = 100
MAX_PAGE_LIMIT = 1000


class FunctionRepository(Protocol):
    async def create(self, config: FunctionConfig, code: CodeBundle) -> FunctionRecord:
        """Store a new function at revision 1; ``FunctionAlreadyExists`` if the name is taken."""
        ...

    async def get(self, name: str) -> FunctionRecord:
        """``FunctionNotFound`` if there is no such function."""
        ...

    async def list(
        self, *, limit: int = DEFAULT_PAGE_LIMIT, cursor: str | None = None
    ) -> Page[FunctionRecord]:
        """Functions ordered by name."""
        ...

    async def update(
        self, name: str, config: FunctionConfig, code: CodeBundle | None
    ) -> FunctionRecord:
        """Replace the config (and all files when ``code`` is given); bumps ``revision``.

        ``config.name`` must equal ``name`` (``RequestInvalid`` otherwise): invocation logs are
        keyed by name, so a rename would orphan them.
        """
        ...

    async def delete(self, name: str) -> FunctionRecord:
        """Remove the function and its files and return what was removed; its invocation logs
        stay (they age out by the log retention)."""
        ...

    async def get_code(self, name: str) -> CodeBundle:
        """The function's current files; ``FunctionNotFound`` if there is no such function."""
        ...


class InvocationLogRepository(Protocol):
    async def add_many(self, logs: Sequence[InvocationLog]) -> None:
        """Insert a batch in one transaction (the batcher flushes every 500 ms / 100 logs).

        Idempotent per ``id``: logs whose id is already stored are skipped, so a batch may be
        retried safely. ``ValueError`` if a ``created_at`` is naive.
        """
        ...

    async def list(
        self,
        *,
        function_name: str | None = None,
        function_id: str | None = None,
        limit: int = DEFAULT_PAGE_LIMIT,
        cursor: str | None = None,
    ) -> Page[InvocationLog]:
        """Newest first (``created_at`` desc, then ``id`` desc); ``function_id`` selects one
        function's records, ``function_name`` every function's that had that name."""
        ...

    async def delete_older_than(self, cutoff: datetime, limit: int) -> int:
        """Delete up to ``limit`` of the oldest records created before ``cutoff`` (an aware
        datetime); returns how many went. Retention calls it in rounds, so no single
        transaction holds the write lock for long."""
        ...


class Store(Protocol):
    # Read-only properties rather than plain attributes so that an implementation may expose a
    # concrete subtype (mypy treats mutable protocol attributes as invariant).
    @property
    def functions(self) -> FunctionRepository: ...

    @property
    def invocations(self) -> InvocationLogRepository: ...

    async def ping(self) -> None:
        """Round-trip to the database; ``StoreUnavailable`` if it cannot be reached."""
        ...

    async def close(self) -> None:
        """Release every connection. Idempotent; any later use raises ``StoreUnavailable``."""
        ...
