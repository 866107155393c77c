"""The SecretRepository contract on every store: sealed rows in and out, names-only lists,
change-log entries for every change, and an all-or-nothing reseal."""

from __future__ import annotations

import pytest

from nova.core.changes import ChangeKind
from nova.core.secrets import SealedSecret, SecretNotFound
from nova.store import Store


def _sealed(name: str, text: bytes = b"cipher", key_id: str = "k1") -> SealedSecret:
    return SealedSecret(name, text + b"\x00\xff", b"n" * 12, key_id)


async def test_put_get_list_delete(store: Store) -> None:
    head = await store.changes.head()
    info, created = await store.secrets.put(_sealed("db"))
    assert created
    again, created = await store.secrets.put(_sealed("db", b"other"))
    assert not created
    assert again.created_at == info.created_at
    assert again.updated_at >= info.updated_at
    await store.secrets.put(_sealed("api"))
    stored = await store.secrets.get_many({"db", "missing"})
    assert stored == {"db": _sealed("db", b"other")}
    first = await store.secrets.list(limit=1)
    assert [item.name for item in first.items] == ["api"]
    second = await store.secrets.list(limit=1, cursor=first.next)
    assert [item.name for item in second.items] == ["db"]
    assert second.next is None
    assert (await store.secrets.delete("db")).name == "db"
    with pytest.raises(SecretNotFound):
        await store.secrets.delete("db")
    changes = await store.changes.since(head)
    assert [(c.kind, c.secret) for c in changes] == [
        (ChangeKind.SECRET_CHANGED, "db"),
        (ChangeKind.SECRET_CHANGED, "db"),
        (ChangeKind.SECRET_CHANGED, "api"),
        (ChangeKind.SECRET_CHANGED, "db"),
    ]


async def test_reseal_is_all_or_nothing(store: Store) -> None:
    for name in ("a", "b", "c"):
        await store.secrets.put(_sealed(name))

    def failing(sealed: SealedSecret) -> SealedSecret:
        if sealed.name == "c":
            raise ValueError("cannot open c")
        return _sealed(sealed.name, b"new", "k2")

    with pytest.raises(ValueError, match="cannot open c"):
        await store.secrets.reseal_all(failing)
    rows = await store.secrets.get_many({"a", "b", "c"})
    assert {row.key_id for row in rows.values()} == {"k1"}
    count = await store.secrets.reseal_all(lambda s: _sealed(s.name, b"new", "k2"))
    assert count == 3
    rows = await store.secrets.get_many({"a", "b", "c"})
    assert {row.key_id for row in rows.values()} == {"k2"}
