"""The AuditRepository contract on every store: appended entries listed newest first, by
filter, across pages."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

from nova.auth.audit import AuditLog
from nova.core.audit import AuditEntry, AuditFilter
from nova.store import Store

from .backends import Target

T0 = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)


def _entry(n: int, actor: str, action: str, target: str, outcome: str = "ok") -> AuditEntry:
    status = 200 if outcome == "ok" else 403
    at = T0 + timedelta(seconds=n)
    return AuditEntry(at, f"NK{actor}", actor, action, target, outcome, status, "127.0.0.1")


async def test_entries_are_listed_newest_first_by_filter(store: Store) -> None:
    await store.audit.add_many(
        [
            _entry(0, "admin", "key.create", "ci"),
            _entry(1, "ci", "function.create", "orders"),
            _entry(2, "ci", "function.delete", "orders", "Auth.Forbidden"),
            _entry(3, "admin", "secret.set", "db"),
        ]
    )
    await store.audit.add_many([])
    everything = await store.audit.list(AuditFilter())
    assert [e.action for e in everything.items] == [
        "secret.set",
        "function.delete",
        "function.create",
        "key.create",
    ]
    assert everything.items[0].seq > everything.items[1].seq
    by_actor = await store.audit.list(AuditFilter(actor="ci"))
    assert [e.target for e in by_actor.items] == ["orders", "orders"]
    prefix = await store.audit.list(AuditFilter(action="function."))
    assert len(prefix.items) == 2
    exact = await store.audit.list(AuditFilter(action="function.create"))
    assert [e.action for e in exact.items] == ["function.create"]
    denied = await store.audit.list(AuditFilter(outcome="denied"))
    assert [e.outcome for e in denied.items] == ["Auth.Forbidden"]
    ok = await store.audit.list(AuditFilter(outcome="ok", target="db"))
    assert [e.action for e in ok.items] == ["secret.set"]
    window = await store.audit.list(
        AuditFilter(since=T0 + timedelta(seconds=1), until=T0 + timedelta(seconds=3))
    )
    assert [e.action for e in window.items] == ["function.delete", "function.create"]
    first = await store.audit.list(AuditFilter(), limit=3)
    assert first.next is not None
    rest = await store.audit.list(AuditFilter(), limit=3, cursor=first.next)
    assert [e.action for e in rest.items] == ["key.create"]
    assert rest.next is None


async def test_closing_the_audit_log_mid_flush_loses_nothing_and_leaves_the_store_writable(
    sql_target: Target,
) -> None:
    """Closing used to cancel a flush inside its transaction: on SQLite the cancelled rollback
    left the write lock held, so the next writes waited out the busy timeout and failed."""
    store = await sql_target.open()
    try:
        shuffled = random.Random(7)
        written = 0
        for trial in range(20):
            audit = AuditLog(store.audit, flush_s=0.001)
            audit.start()
            for n in range(200):
                audit.add(_entry(n, f"trial{trial}", "function.invoke", "orders", "Auth.Denied"))
            written += 200
            await asyncio.sleep(shuffled.uniform(0.001, 0.02))
            await audit.close()
            await asyncio.wait_for(store.audit.add_many([_entry(0, "after", "key.create", "x")]), 5)
            written += 1
        listed, cursor = 0, None
        while True:
            page = await store.audit.list(AuditFilter(), limit=1000, cursor=cursor)
            listed += len(page.items)
            if (cursor := page.next) is None:
                break
        assert listed == written
    finally:
        await store.close()
