"""The BuildRepository contract on every store: a function's last build, the last good one
kept through failures, nothing recorded for a function that is gone, and removal with it."""

from __future__ import annotations

from nova.core.builds import StoredBuild
from nova.core.models import CodeBundle, CodeFile, FunctionConfig
from nova.store import Store


async def _function(store: Store, name: str = "fn") -> str:
    config = FunctionConfig(name=name, runtime="go", handler="handler.Handler")
    return (
        await store.functions.create(config, CodeBundle({"handler.go": CodeFile(b"package main")}))
    ).id


async def test_a_failed_build_keeps_the_last_good_one(store: Store) -> None:
    function_id = await _function(store)
    assert await store.builds.get(function_id) is None
    await store.builds.record(function_id, "h1", "compiling", "", "k1")
    good = await store.builds.record(function_id, "h1", "success", "$ go build\n", "k1")
    assert good == StoredBuild(function_id, "h1", "success", "$ go build\n", "k1", "h1", "k1")
    failed = await store.builds.record(function_id, "h2", "failed", "syntax error", "k2")
    assert failed == StoredBuild(function_id, "h2", "failed", "syntax error", "k2", "h1", "k1")
    assert await store.builds.get(function_id) == failed
    fixed = await store.builds.record(function_id, "h3", "success", "ok", "k3")
    assert fixed is not None
    assert (fixed.good_code_hash, fixed.good_key) == ("h3", "k3")


async def test_builds_are_per_function_and_go_with_it(store: Store) -> None:
    one, two = await _function(store, "one"), await _function(store, "two")
    await store.builds.record(one, "h1", "success", "", "k1")
    assert await store.builds.get(two) is None
    await store.functions.delete("one")
    assert await store.builds.get(one) is None
    assert await store.builds.record(one, "h2", "failed", "", "k2") is None
