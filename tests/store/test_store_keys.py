"""The ApiKeyRepository contract on every store: hashes in and out, unique names and hashes,
change-log entries for every change (and none for a recorded use)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from nova.core.auth import ApiKey, KeyAlreadyExists, KeyNotFound, Role
from nova.core.changes import ChangeKind
from nova.store import Store

NOW = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)


def _key(name: str, key_id: str, key_hash: str, **fields: object) -> ApiKey:
    values: dict[str, object] = {
        "id": key_id,
        "name": name,
        "role": Role.DEVELOPER,
        "scope": ("orders-*", "billing"),
        "key_hash": key_hash,
        "enabled": True,
        "created_at": NOW,
        "expires_at": NOW + timedelta(days=1),
        "sealed_secret": b"\x00nonce-and-ciphertext\xff",
        **fields,
    }
    return ApiKey(**values)  # type: ignore[arg-type]


async def test_create_get_all_disable_delete(store: Store) -> None:
    head = await store.changes.head()
    created = await store.api_keys.create(_key("ci", "NKA", "a" * 64))
    assert await store.api_keys.get("ci") == created
    await store.api_keys.create(_key("admin", "NKB", "b" * 64, role=Role.ADMIN, scope=("*",)))
    assert [key.name for key in await store.api_keys.all()] == ["admin", "ci"]
    disabled = await store.api_keys.set_enabled("ci", False)
    assert not disabled.enabled
    assert not (await store.api_keys.get("ci")).enabled
    assert (await store.api_keys.delete("ci")).id == "NKA"
    with pytest.raises(KeyNotFound):
        await store.api_keys.get("ci")
    with pytest.raises(KeyNotFound):
        await store.api_keys.delete("ci")
    with pytest.raises(KeyNotFound):
        await store.api_keys.set_enabled("ci", True)
    changes = await store.changes.since(head)
    assert [(c.kind, c.api_key, c.function_name) for c in changes] == [
        (ChangeKind.KEY_CHANGED, "NKA", ""),
        (ChangeKind.KEY_CHANGED, "NKB", ""),
        (ChangeKind.KEY_CHANGED, "NKA", ""),
        (ChangeKind.KEY_CHANGED, "NKA", ""),
    ]


async def test_names_and_hashes_are_unique(store: Store) -> None:
    await store.api_keys.create(_key("ci", "NKA", "a" * 64))
    with pytest.raises(KeyAlreadyExists):
        await store.api_keys.create(_key("ci", "NKC", "c" * 64))
    with pytest.raises(KeyAlreadyExists):
        await store.api_keys.create(_key("other", "NKD", "a" * 64))


async def test_touch_records_last_use_without_a_change(store: Store) -> None:
    await store.api_keys.create(_key("ci", "NKA", "a" * 64))
    head = await store.changes.head()
    used = NOW + timedelta(minutes=5)
    await store.api_keys.touch({"NKA": used, "NKGONE": used})  # a deleted key: nothing
    await store.api_keys.touch({})
    assert (await store.api_keys.get("ci")).last_used_at == used
    assert await store.changes.head() == head
