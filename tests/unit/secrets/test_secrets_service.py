"""Sealing, the master key's file, and the secret service over the in-memory store."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from nova.core.secrets import (
    MasterKeyManaged,
    SecretMissing,
    SecretUnreadable,
    scrub,
)
from nova.secrets.keyring import Keyring, MasterKey
from nova.secrets.master_key import load_master_key, write_key_file
from nova.secrets.service import SecretService
from nova.store.memory import MemoryStore

VALUE = "hunter2-correct-horse"


def test_sealed_values_open_only_under_their_name_and_key() -> None:
    key = MasterKey.generate()
    sealed = key.seal("db", VALUE)
    assert VALUE.encode() not in sealed.ciphertext
    assert key.open(sealed) == VALUE
    moved = type(sealed)("other", sealed.ciphertext, sealed.nonce, sealed.key_id)
    with pytest.raises(SecretUnreadable, match="'other'"):
        key.open(moved)  # the name is the associated data: a row copied elsewhere fails
    stranger = Keyring(MasterKey.generate())
    with pytest.raises(SecretUnreadable, match=sealed.key_id) as caught:
        stranger.open(sealed)
    assert VALUE not in caught.value.message
    assert Keyring(MasterKey.generate()).rotated(key).open(key.seal("db", VALUE)) == VALUE
    assert Keyring(key).rotated(MasterKey.generate()).open(sealed) == VALUE


def test_master_key_formats() -> None:
    raw = bytes(range(32))
    assert MasterKey.parse(raw.hex()).material == raw
    assert MasterKey.parse(base64.b64encode(raw).decode()).material == raw
    assert MasterKey.parse(base64.urlsafe_b64encode(raw).decode().rstrip("=")).material == raw
    with pytest.raises(ValueError, match="base64 of 32") as caught:
        MasterKey.parse("not-a-key-at-all")
    assert "not-a-key" not in str(caught.value)
    assert raw.hex() not in repr(MasterKey(raw))


def test_key_file_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "data" / "master-key"
    first = load_master_key(None, path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_master_key(None, path).key.key_id == first.key.key_id
    configured = MasterKey.generate()
    from_env = load_master_key(configured.encoded(), path)
    assert (from_env.key.key_id, from_env.file) == (configured.key_id, None)


async def test_resolve_replaces_references_and_names_missing_secrets(tmp_path: Path) -> None:
    changed: list[str] = []
    service = SecretService(
        MemoryStore().secrets, load_master_key(None, tmp_path / "k"), changed.append
    )
    await service.set("db", VALUE)
    assert changed == ["db"]
    env = {"A": "plain", "DB": "$SECRET:db"}
    assert await service.resolve("fn", env) == {"A": "plain", "DB": VALUE}
    with pytest.raises(SecretMissing) as caught:
        await service.resolve("fn", {"TOKEN": "$SECRET:nope"})
    assert "TOKEN" in caught.value.message
    assert "'nope'" in caught.value.message
    assert caught.value.status == 409


async def test_rotation_replaces_the_key_file_and_keeps_values(tmp_path: Path) -> None:
    store = MemoryStore()
    path = tmp_path / "master-key"
    service = SecretService(store.secrets, load_master_key(None, path), lambda _: None)
    await service.set("db", VALUE)
    old = path.read_text()
    rotation = await service.rotate()
    assert rotation.secrets == 1
    assert path.read_text() != old
    assert not path.with_name("master-key.new").exists()
    reopened = SecretService(store.secrets, load_master_key(None, path), lambda _: None)
    assert await reopened.resolve("fn", {"DB": "$SECRET:db"}) == {"DB": VALUE}


@pytest.mark.parametrize("committed", [False, True])
async def test_a_rotation_interrupted_before_its_rename_is_finished_at_start(
    tmp_path: Path, committed: bool
) -> None:
    store = MemoryStore()
    path = tmp_path / "master-key"
    source = load_master_key(None, path)
    service = SecretService(store.secrets, source, lambda _: None)
    await service.set("db", VALUE)
    new = MasterKey.generate()
    write_key_file(path.with_name("master-key.new"), new)  # the daemon stopped after this...
    if committed:  # ... or after the re-encryption committed, before the rename
        await store.secrets.reseal_all(lambda s: new.seal(s.name, source.key.open(s)))
    source = load_master_key(None, path)
    assert source.pending is not None
    restarted = SecretService(store.secrets, source, lambda _: None)
    await restarted.start()
    assert restarted.key_id == new.key_id
    assert load_master_key(None, path).key.key_id == new.key_id
    rows = await store.secrets.get_many({"db"})
    assert rows["db"].key_id == new.key_id
    assert await restarted.resolve("fn", {"DB": "$SECRET:db"}) == {"DB": VALUE}


async def test_rotation_with_an_environment_key_needs_the_new_key() -> None:
    store = MemoryStore()
    source = load_master_key(MasterKey.generate().encoded(), Path("/nonexistent/never"))
    service = SecretService(store.secrets, source, lambda _: None)
    await service.set("db", VALUE)
    with pytest.raises(MasterKeyManaged):
        await service.rotate()
    new = MasterKey.generate()
    assert (await service.rotate(new.encoded())).key_id == new.key_id
    assert await service.resolve("fn", {"DB": "$SECRET:db"}) == {"DB": VALUE}


def test_scrub() -> None:
    assert scrub(f"x {VALUE} y {VALUE}", (VALUE,)) == "x [secret] y [secret]"
    assert scrub("abc", ("ab",)) == "abc"  # too short to tell from ordinary text
