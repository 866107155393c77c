"""The AuditRepository contract on every store: appended entries listed newest first, by
filter, across pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from nova.core.audit import AuditEntry, AuditFilter
from nova.store import Store

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
