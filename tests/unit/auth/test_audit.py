"""The audit writer: changes written at once, refusals batched and bounded; actions named."""

from __future__ import annotations

from datetime import UTC, datetime

from nova.api.audit_trail import describe
from nova.auth.audit import AuditLog
from nova.core.audit import AuditEntry, AuditFilter
from nova.store.memory import MemoryStore


def _entry(action: str) -> AuditEntry:
    return AuditEntry(datetime.now(UTC), "", "anonymous", action, "t", "x", 401, "10.0.0.1")


async def test_refusals_are_batched_and_bounded() -> None:
    store = MemoryStore()
    audit = AuditLog(store.audit, max_buffer=3)
    await audit.record(_entry("function.create"))
    assert len((await audit.list(AuditFilter(), 10, None)).items) == 1
    for _ in range(5):
        audit.add(_entry("auth.refused"))
    assert len((await audit.list(AuditFilter(), 10, None)).items) == 1  # not yet written
    assert audit.dropped == 2
    await audit.flush()
    assert len((await audit.list(AuditFilter(), 10, None)).items) == 4
    assert audit.dropped == 0


def test_actions_and_targets() -> None:
    assert describe("DELETE", "/functions/shop") == ("function.delete", "shop")
    assert describe("PUT", "/functions/shop/aliases/live") == ("alias.set", "shop:live")
    assert describe("PUT", "/secrets/db") == ("secret.set", "db")
    assert describe("POST", "/keys/ci/disable") == ("key.disable", "ci")
    assert describe("POST", "/functions") == ("function.create", "POST /functions")
    assert describe("POST", "/new/thing") == ("request", "POST /new/thing")
