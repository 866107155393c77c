"""Key verification on the in-memory store: usable keys pass; unknown, disabled and expired
ones are refused with their codes; uses are written in batches, not per request."""

from __future__ import annotations

import hmac
import stat
from pathlib import Path

import pytest

from nova.auth.service import KeyService
from nova.auth.tokens import TokenHasher, load_pepper
from nova.auth.verifier import KeyVerifier
from nova.core.auth import InvalidKey, KeyDisabled, KeyExpired, LastAdminKey
from nova.core.errors import RequestInvalid
from nova.store.memory import MemoryStore

PEPPER = b"unit-test-pepper-0123456789"


class CountingStore(MemoryStore):
    """Counts the key reads and use writes the verifier makes."""

    def __init__(self) -> None:
        super().__init__()
        self.touches = 0
        self.reads = 0
        keys = self.api_keys
        touch, read = keys.touch, keys.all

        async def counted_touch(last_used: object) -> None:
            self.touches += 1
            await touch(last_used)  # type: ignore[arg-type]

        async def counted_all() -> object:
            self.reads += 1
            return await read()

        keys.touch = counted_touch  # type: ignore[method-assign,assignment]
        keys.all = counted_all  # type: ignore[method-assign,assignment]


async def test_a_key_verifies_and_its_uses_are_batched() -> None:
    store = CountingStore()
    keys = KeyService(store.api_keys, PEPPER)
    created = await keys.create("ci", "developer")
    verifier = KeyVerifier(store.api_keys, PEPPER)
    await verifier.reload()
    reads = store.reads
    for _ in range(100):
        assert (await verifier.verify(created.token.encode())).name == "ci"
    assert store.reads == reads  # a dict lookup: the store is not read per request
    assert store.touches == 0
    assert verifier.last_used_at(created.key) is not None
    await verifier.flush()
    await verifier.flush()  # nothing new: no write
    assert store.touches == 1
    assert (await store.api_keys.get("ci")).last_used_at is not None


async def test_unknown_disabled_and_expired_keys_are_refused() -> None:
    store = MemoryStore()
    keys = KeyService(store.api_keys, PEPPER)
    now = [1000.0]
    verifier = KeyVerifier(store.api_keys, PEPPER, clock=lambda: now[0])
    created = await keys.create("ci", "invoker")
    await verifier.reload()
    with pytest.raises(InvalidKey):
        await verifier.verify(b"nova_NKWRONG_secret")
    other = KeyVerifier(store.api_keys, b"another-pepper-0123456789")
    await other.reload()
    with pytest.raises(InvalidKey):  # the same key under another pepper is no key
        await other.verify(created.token.encode())
    assert (await verifier.verify(created.token.encode())).name == "ci"  # now remembered
    await keys.disable("ci")
    await verifier.reload()
    with pytest.raises(KeyDisabled):
        await verifier.verify(created.token.encode())
    await keys.enable("ci")
    short = await keys.create("short", "viewer", expires_in_s=60)
    await verifier.reload()
    now[0] = short.key.created_at.timestamp() + 30
    assert (await verifier.verify(short.token.encode())).name == "short"
    now[0] += 60
    with pytest.raises(KeyExpired):
        await verifier.verify(short.token.encode())


async def test_a_key_created_elsewhere_is_found_by_reloading_on_a_miss() -> None:
    store = MemoryStore()
    verifier = KeyVerifier(store.api_keys, PEPPER)
    await verifier.start()
    try:
        created = await KeyService(store.api_keys, PEPPER).create("late", "viewer")
        verifier._reloaded_at = 0.0  # the last reload was long ago
        assert (await verifier.verify(created.token.encode())).name == "late"
    finally:
        await verifier.close()


async def test_bad_fields_and_the_last_admin_are_refused(tmp_path: Path) -> None:
    store = MemoryStore()
    keys = KeyService(store.api_keys, PEPPER)
    for name, role, scope in (("Bad", "viewer", "*"), ("ok", "root", "*"), ("ok", "viewer", " ")):
        with pytest.raises(RequestInvalid):
            await keys.create(name, role, scope)
    with pytest.raises(RequestInvalid):
        await keys.create("ok", "viewer", expires_in_s=0)
    token = await keys.bootstrap(tmp_path / "admin-key")
    assert token is not None
    assert (tmp_path / "admin-key").read_text().strip() == token
    assert stat.S_IMODE((tmp_path / "admin-key").stat().st_mode) == 0o600
    assert await keys.bootstrap(tmp_path / "admin-key") is None  # keys exist: none created
    with pytest.raises(LastAdminKey):
        await keys.delete("admin")
    with pytest.raises(LastAdminKey):
        await keys.disable("admin")
    await keys.create("second", "admin")
    await keys.disable("admin")


@pytest.mark.parametrize("pepper", [b"short-pepper-0123", b"p" * 64, b"long" * 40])
def test_the_fast_hasher_is_hmac_sha256(pepper: bytes) -> None:
    for token in (b"", b"nova_NKX_secret", b"t" * 500):
        assert TokenHasher(pepper)(token) == hmac.digest(pepper, token, "sha256")


def test_the_pepper_file_is_created_private(tmp_path: Path) -> None:
    pepper = load_pepper(None, tmp_path / "auth-pepper")
    assert stat.S_IMODE((tmp_path / "auth-pepper").stat().st_mode) == 0o600
    assert load_pepper(None, tmp_path / "auth-pepper") == pepper
    assert load_pepper("configured-pepper-value", tmp_path / "other") == b"configured-pepper-value"
    with pytest.raises(ValueError, match="16"):
        load_pepper("short", tmp_path / "other")
