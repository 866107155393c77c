"""The audit log's writer: changes are written as they finish, refusals in batches.

A change (a create, update or delete of anything) is written before the request's task ends,
one store write per change: changes are rare and must not be lost. A refused request is
buffered and written with others every ``flush_s``, so a flood of bad keys costs the store one
write per second, not one per request; past ``max_buffer`` entries waiting, refusals are
counted and dropped (the count is logged) rather than grow memory without bound.
"""

from __future__ import annotations

import logging

from nova.core.audit import AuditEntry, AuditFilter
from nova.core.errors import NovaError
from nova.core.models import Page
from nova.core.periodic import Periodic
from nova.store.auth_ports import AuditRepository

logger = logging.getLogger(__name__)


class AuditLog:
    def __init__(
        self, repository: AuditRepository, *, flush_s: float = 1.0, max_buffer: int = 10_000
    ) -> None:
        self._repository = repository
        self._buffer: list[AuditEntry] = []
        self._max_buffer = max_buffer
        self.dropped = 0
        self._flusher = Periodic("audit-flush", flush_s, self.flush, logger, "cannot write audit")

    def start(self) -> None:
        self._flusher.start()

    async def record(self, entry: AuditEntry) -> None:
        """Write a change's entry now (a store failure is logged: the change stands)."""
        try:
            await self._repository.add_many([entry])
        except NovaError as exc:
            logger.error("audit entry lost (%s %s): %s", entry.action, entry.target, exc.message)

    def add(self, entry: AuditEntry) -> None:
        """Buffer a refusal's entry for the next flush."""
        if len(self._buffer) >= self._max_buffer:
            self.dropped += 1
            return
        self._buffer.append(entry)

    async def flush(self) -> None:
        if self.dropped:
            logger.warning("%d refused request(s) not audited: the buffer was full", self.dropped)
            self.dropped = 0
        if not self._buffer:
            return
        entries, self._buffer = self._buffer, []
        await self._repository.add_many(entries)

    async def list(
        self, selection: AuditFilter, limit: int, cursor: str | None
    ) -> Page[AuditEntry]:
        return await self._repository.list(selection, limit=limit, cursor=cursor)

    async def close(self) -> None:
        await self._flusher.close()
        try:
            await self.flush()
        except NovaError as exc:
            logger.error("audit entries of refused requests lost at shutdown: %s", exc.message)
