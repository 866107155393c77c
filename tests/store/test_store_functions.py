"""FunctionRepository contract, on SQLite, PostgreSQL and the in-memory fake."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from nova.core.errors import FunctionAlreadyExists, FunctionNotFound, RequestInvalid
from nova.core.models import CodeBundle, CodeFile, ExecutionMode, FunctionConfig, InvocationLog
from nova.core.tenancy import DEFAULT_ENVIRONMENT, Environment
from nova.store import Store


def config(name: str = "hello", **overrides: Any) -> FunctionConfig:
    fields: dict[str, Any] = {"runtime": "python", "handler": "handler.handler"} | overrides
    return FunctionConfig(name=name, **fields)


def bundle(**files: bytes) -> CodeBundle:
    return CodeBundle(
        {path.replace("__", "/") + ".py": CodeFile(body) for path, body in files.items()}
    )


HELLO = bundle(handler=b"def handler(event, context):\n    return event\n")


async def test_create_then_get_round_trips_every_field(store: Store) -> None:
    full = config(
        memory_mb=256,
        timeout_s=2.5,
        env={"GREETING": "grüß dich", "EMPTY": ""},
        mode=ExecutionMode.PROCESS,
        min_replicas=1,
        max_replicas=3,
        instance_concurrency=4,
        backend="process",
        network=True,
        description="says hello — in every language",
    )
    created = await store.functions.create(full, HELLO)

    assert created.config == full
    assert created.revision == 1
    assert created.code_hash == HELLO.sha256
    assert created.code_size == HELLO.size
    assert created.created_at == created.updated_at
    assert created.created_at.utcoffset() == timedelta(0)
    fetched = await store.functions.get("hello")
    assert fetched == created
    assert isinstance(fetched.config.mode, ExecutionMode)
    assert isinstance(fetched.config.timeout_s, float)
    assert fetched.created_at.utcoffset() == timedelta(0)


async def test_defaults_round_trip(store: Store) -> None:
    created = await store.functions.create(config(), HELLO)
    fetched = await store.functions.get("hello")
    assert fetched == created
    assert fetched.config == config()
    assert fetched.config.backend is None


async def test_code_round_trips_binary_content_and_executable_bits(store: Store) -> None:
    code = CodeBundle(
        {
            "bootstrap": CodeFile(b"#!/bin/sh\nexec ./app\n", executable=True),
            "lib/blob.bin": CodeFile(bytes(range(256)) * 3),
            "empty.txt": CodeFile(b""),
            "données/π.py": CodeFile("π = 3.14159\n".encode()),
            "nul.bin": CodeFile(b"\x00"),
        }
    )
    created = await store.functions.create(config(runtime="provided"), code)

    stored = await store.functions.get_code("hello")
    assert stored == code
    assert stored.files["bootstrap"].executable is True
    assert stored.files["lib/blob.bin"].executable is False
    assert isinstance(stored.files["lib/blob.bin"].content, bytes)
    assert stored.sha256 == created.code_hash


async def test_a_function_may_have_no_files(store: Store) -> None:
    created = await store.functions.create(config(), CodeBundle({}))
    assert (await store.functions.get_code("hello")).files == {}
    assert created.code_size == 0


async def test_duplicate_name_is_rejected_and_the_original_kept(store: Store) -> None:
    original = await store.functions.create(config(), HELLO)
    with pytest.raises(FunctionAlreadyExists) as caught:
        await store.functions.create(config(runtime="node"), bundle(other=b"x"))
    assert caught.value.name == "hello"
    assert await store.functions.get("hello") == original
    assert await store.functions.get_code("hello") == HELLO


async def test_concurrent_creates_of_one_name_let_exactly_one_win(store: Store) -> None:
    results = await asyncio.gather(
        *(store.functions.create(config(), HELLO) for _ in range(5)), return_exceptions=True
    )
    errors = [result for result in results if isinstance(result, BaseException)]
    assert len(errors) == 4
    assert all(isinstance(error, FunctionAlreadyExists) for error in errors)
    assert len((await store.functions.list()).items) == 1


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda store: store.functions.get("ghost"), id="get"),
        pytest.param(lambda store: store.functions.get_code("ghost"), id="get_code"),
        pytest.param(
            lambda store: store.functions.update("ghost", config("ghost"), None), id="update"
        ),
        pytest.param(
            lambda store: store.functions.update("ghost", config("ghost"), HELLO), id="update_code"
        ),
        pytest.param(lambda store: store.functions.delete("ghost"), id="delete"),
    ],
)
async def test_unknown_function_is_not_found(
    store: Store, call: Callable[[Store], Awaitable[object]]
) -> None:
    await store.functions.create(config(), HELLO)
    with pytest.raises(FunctionNotFound) as caught:
        await call(store)
    assert caught.value.name == "ghost"


async def test_list_pages_through_functions_ordered_by_name(store: Store) -> None:
    # Byte order on every backend: '-' < '0' < 'b', whatever PostgreSQL's locale would say.
    names = ["delta", "ab", "a-c", "charlie", "a0"]
    for name in names:
        await store.functions.create(config(name), HELLO)

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await store.functions.list(limit=2, cursor=cursor)
        pages += 1
        assert len(page.items) <= 2
        seen += [record.name for record in page.items]
        if page.next is None:
            break
        cursor = page.next
    assert seen == ["a-c", "a0", "ab", "charlie", "delta"]
    assert pages == 3


async def test_last_full_page_has_no_next(store: Store) -> None:
    for name in ["a", "b", "c", "d"]:
        await store.functions.create(config(name), HELLO)
    first = await store.functions.list(limit=2)
    assert first.next is not None
    second = await store.functions.list(limit=2, cursor=first.next)
    assert [record.name for record in second.items] == ["c", "d"]
    assert second.next is None
    everything = await store.functions.list()
    assert len(everything.items) == 4
    assert everything.next is None


async def test_empty_list(store: Store) -> None:
    page = await store.functions.list()
    assert page.items == []
    assert page.next is None


@pytest.mark.parametrize("limit", [0, -1, 1001])
async def test_list_rejects_a_limit_out_of_range(store: Store, limit: int) -> None:
    with pytest.raises(RequestInvalid, match="limit"):
        await store.functions.list(limit=limit)


@pytest.mark.parametrize("cursor", ["", "not a cursor!", "e30", "WyJmIl0"])
async def test_list_rejects_a_malformed_cursor(store: Store, cursor: str) -> None:
    with pytest.raises(RequestInvalid, match="cursor"):
        await store.functions.list(cursor=cursor)


async def test_list_rejects_a_cursor_of_another_list(store: Store) -> None:
    now = datetime.now(UTC)
    logs = [
        InvocationLog(
            f"r{i}",
            "f-id",
            "f",
            "python",
            "$LATEST",
            "",
            1.0,
            1.5,
            False,
            True,
            None,
            None,
            0,
            0,
            "",
            "",
            now,
        )
        for i in range(2)
    ]
    await store.invocations.add_many(logs)
    page = await store.invocations.list(limit=1)
    assert page.next is not None
    with pytest.raises(RequestInvalid, match="cursor"):
        await store.functions.list(cursor=page.next)


async def test_update_replaces_config_and_code(store: Store) -> None:
    created = await store.functions.create(
        config(env={"OLD": "1"}), bundle(handler=b"old", helper=b"old helper")
    )
    new_config = config(runtime="node", handler="index.handler", env={"NEW": "2"}, memory_mb=512)
    new_code = CodeBundle({"index.js": CodeFile(b"exports.handler = async e => e\n")})

    updated = await store.functions.update("hello", new_config, new_code)

    assert updated.config == new_config
    assert updated.revision == 2
    assert updated.id == created.id
    assert updated.created_at == created.created_at
    assert updated.updated_at >= created.updated_at
    assert updated.code_hash == new_code.sha256 != created.code_hash
    assert updated.code_size == new_code.size
    assert await store.functions.get("hello") == updated
    assert await store.functions.get_code("hello") == new_code  # old files are gone


async def test_update_without_code_keeps_the_files(store: Store) -> None:
    created = await store.functions.create(config(), HELLO)
    for revision in (2, 3, 4):
        updated = await store.functions.update("hello", config(timeout_s=float(revision)), None)
        assert updated.revision == revision
    assert updated.code_hash == created.code_hash
    assert updated.code_size == created.code_size
    assert updated.config.timeout_s == 4.0
    assert await store.functions.get_code("hello") == HELLO


async def test_update_can_empty_the_code(store: Store) -> None:
    await store.functions.create(config(), HELLO)
    updated = await store.functions.update("hello", config(), CodeBundle({}))
    assert updated.code_size == 0
    assert (await store.functions.get_code("hello")).files == {}


async def test_update_refuses_to_rename(store: Store) -> None:
    await store.functions.create(config(), HELLO)
    with pytest.raises(RequestInvalid, match="rename"):
        await store.functions.update("hello", config("goodbye"), None)
    assert (await store.functions.get("hello")).revision == 1


async def test_delete_removes_the_function_and_its_code(store: Store) -> None:
    created = await store.functions.create(config(), bundle(handler=b"one", extra=b"two"))
    other = await store.functions.create(config("other"), HELLO)

    assert await store.functions.delete("hello") == created  # what was removed

    with pytest.raises(FunctionNotFound):
        await store.functions.get("hello")
    with pytest.raises(FunctionNotFound):
        await store.functions.get_code("hello")
    with pytest.raises(FunctionNotFound):
        await store.functions.delete("hello")
    assert await store.functions.get("other") == other
    assert await store.functions.get_code("other") == HELLO


async def test_a_recreated_function_starts_afresh(store: Store) -> None:
    first = await store.functions.create(config(), bundle(handler=b"one", extra=b"two"))
    await store.functions.update("hello", config(), None)
    await store.functions.delete("hello")

    again = await store.functions.create(config(), HELLO)

    assert again.id != first.id
    assert again.revision == 1
    assert await store.functions.get_code("hello") == HELLO


async def test_usage_counts_an_environment_s_functions_and_code(store: Store) -> None:
    other = Environment("acme", "shop", "prod")
    empty = Environment("acme", "shop", "dev")
    big = bundle(handler=b"def handler(event, context):\n    return 1\n" * 10)
    await store.functions.create(config("hello"), HELLO)
    await store.functions.create(config("acme.shop.prod.one"), HELLO)
    await store.functions.create(config("acme.shop.prod.two"), big)
    await store.functions.create(config("acme.shop.production.three"), big)  # a longer name

    assert await store.functions.usage(DEFAULT_ENVIRONMENT) == (1, HELLO.size)
    assert await store.functions.usage(other) == (2, HELLO.size + big.size)
    assert await store.functions.usage(empty) == (0, 0)
    await store.functions.update("acme.shop.prod.two", config("acme.shop.prod.two"), HELLO)
    assert await store.functions.usage(other) == (2, 2 * HELLO.size)
