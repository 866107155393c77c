"""InvocationLogRepository contract, on SQLite, PostgreSQL and the in-memory fake."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from nova.core.errors import RequestInvalid
from nova.core.models import CodeBundle, FunctionConfig, InvocationLog
from nova.core.tenancy import DEFAULT_ENVIRONMENT, Environment
from nova.store import Store
from nova.store.cursors import encode

T0 = datetime(2026, 11, 22, 12, 0, 0, 123456, tzinfo=UTC)


def log(
    log_id: str, at: datetime = T0, function: str = "hello", **overrides: object
) -> InvocationLog:
    fields: dict[str, object] = {
        "id": log_id,
        "function_id": f"{function}-id",
        "function_name": function,
        "runtime": "python",
        "version": "$LATEST",
        "qualifier": "",
        "duration_ms": 1.25,
        "total_ms": 1.5,
        "cold_start": False,
        "success": True,
        "error_type": None,
        "error_message": None,
        "input_size": 2,
        "output_size": 2,
        "stdout": "",
        "stderr": "",
        "created_at": at,
    }
    fields.update(overrides)
    return InvocationLog(**fields)  # type: ignore[arg-type]


async def collect(store: Store, limit: int, function_name: str | None = None) -> list[str]:
    """Every id, page by page, checking page sizes on the way."""
    ids: list[str] = []
    cursor: str | None = None
    while True:
        page = await store.invocations.list(function_name=function_name, limit=limit, cursor=cursor)
        assert len(page.items) <= limit
        assert page.items or not ids, "a cursor must never lead to an empty page"
        ids += [item.id for item in page.items]
        if page.next is None:
            return ids
        cursor = page.next


async def test_add_many_of_nothing_is_a_no_op(store: Store) -> None:
    await store.invocations.add_many([])
    assert (await store.invocations.list()).items == []


async def test_every_field_round_trips(store: Store) -> None:
    failed = log(
        "req-1",
        # Another zone in, the same instant out, in UTC.
        at=datetime(2026, 11, 22, 14, 0, 0, 654321, tzinfo=timezone(timedelta(hours=2))),
        runtime="node",
        version="3",
        duration_ms=12.345,
        cold_start=True,
        success=False,
        error_type="Handler.Exception",
        error_message="boom — ünïcode",
        input_size=2**40,
        output_size=0,
        stdout="line 1\nline 2\n",
        stderr="Traceback…\n",
        start="cold",
        sandbox_ms=12.5,
        init_ms=30.0,
    )
    await store.invocations.add_many([failed])

    (stored,) = (await store.invocations.list()).items

    assert stored == replace(failed, created_at=failed.created_at.astimezone(UTC))
    assert stored.created_at.utcoffset() == timedelta(0)
    assert stored.created_at == datetime(2026, 11, 22, 12, 0, 0, 654321, tzinfo=UTC)
    assert isinstance(stored.duration_ms, float)


async def test_integral_durations_come_back_as_floats(store: Store) -> None:
    await store.invocations.add_many([log("a", duration_ms=3.0)])
    (stored,) = (await store.invocations.list()).items
    assert stored.duration_ms == 3.0
    assert isinstance(stored.duration_ms, float)


async def test_newest_first_with_ties_broken_by_id(store: Store) -> None:
    await store.invocations.add_many(
        [
            log("b", T0),
            log("a", T0 + timedelta(microseconds=1)),
            log("c", T0),
            log("z", T0 - timedelta(days=1)),
            log("d", T0 + timedelta(hours=1)),
        ]
    )
    page = await store.invocations.list()
    assert [item.id for item in page.items] == ["d", "a", "c", "b", "z"]
    assert page.next is None


async def test_filter_by_function(store: Store) -> None:
    await store.invocations.add_many(
        [log(f"h{i}", T0 + timedelta(seconds=i), "hello") for i in range(3)]
        + [log(f"o{i}", T0 + timedelta(seconds=i), "other") for i in range(2)]
    )
    hello = await store.invocations.list(function_name="hello")
    assert [item.id for item in hello.items] == ["h2", "h1", "h0"]
    assert (await store.invocations.list(function_name="nobody")).items == []
    assert len((await store.invocations.list()).items) == 5


async def test_filter_by_function_id_separates_functions_that_shared_a_name(
    store: Store,
) -> None:
    await store.invocations.add_many(
        [
            log("old", T0, "hello", function_id="first"),
            log("new", T0, "hello", function_id="second"),
        ]
    )
    by_id = await store.invocations.list(function_id="second")
    assert [item.id for item in by_id.items] == ["new"]
    by_name = await store.invocations.list(function_name="hello")
    assert sorted(item.id for item in by_name.items) == ["new", "old"]


async def test_outcomes_of_one_version_since_a_moment(store: Store) -> None:
    await store.invocations.add_many(
        [
            log("a", T0, version="2", duration_ms=5.0),
            log("b", T0 + timedelta(seconds=1), version="2", duration_ms=7.0, success=False),
            log("c", T0 - timedelta(seconds=1), version="2", duration_ms=100.0),  # before
            log("d", T0, version="1", duration_ms=100.0),  # another version
            log("e", T0, version="2", function_id="other", duration_ms=100.0),
        ]
    )
    durations, errors = await store.invocations.outcomes("hello-id", "2", T0)
    assert (sorted(durations), errors) == ([5.0, 7.0], 1)
    assert await store.invocations.outcomes("hello-id", "3", T0) == ([], 0)


async def test_delete_older_than_removes_the_oldest_in_bounded_rounds(store: Store) -> None:
    await store.invocations.add_many(
        [log(f"old{i}", T0 - timedelta(days=10, seconds=i)) for i in range(5)] + [log("recent", T0)]
    )
    cutoff = T0 - timedelta(days=1)
    assert await store.invocations.delete_older_than(cutoff, limit=3) == 3
    remaining = [item.id for item in (await store.invocations.list()).items]
    assert remaining == ["recent", "old0", "old1"]  # the three oldest went first
    assert await store.invocations.delete_older_than(cutoff, limit=3) == 2
    assert await store.invocations.delete_older_than(cutoff, limit=3) == 0
    assert [item.id for item in (await store.invocations.list()).items] == ["recent"]


async def test_delete_beyond_count_keeps_each_function_s_newest(store: Store) -> None:
    await store.invocations.add_many(
        [log(f"a{i}", T0 - timedelta(seconds=i), function="a") for i in range(5)]
        + [log(f"b{i}", T0 - timedelta(seconds=i), function="b") for i in range(2)]
    )
    assert await store.invocations.delete_beyond_count(keep=2, limit=2) == 2
    assert await store.invocations.delete_beyond_count(keep=2, limit=2) == 1
    assert await store.invocations.delete_beyond_count(keep=2, limit=2) == 0
    remaining = sorted(item.id for item in (await store.invocations.list()).items)
    assert remaining == ["a0", "a1", "b0", "b1"]  # a's three oldest went, b was within


async def test_cursor_paging_is_exact_across_equal_timestamps(store: Store) -> None:
    # Ids chosen so that id order disagrees with insertion order, and three rows share a time.
    logs = [
        log("m", T0 + timedelta(seconds=3)),
        log("k", T0 + timedelta(seconds=2)),
        log("x", T0 + timedelta(seconds=2)),
        log("b", T0 + timedelta(seconds=2)),
        log("q", T0 + timedelta(seconds=1)),
        log("a", T0),
        log("n", T0 - timedelta(seconds=1)),
    ]
    await store.invocations.add_many(logs)
    expected = ["m", "x", "k", "b", "q", "a", "n"]

    for limit in (1, 2, 3, 7, 8):
        assert await collect(store, limit) == expected


async def test_cursor_paging_with_a_function_filter(store: Store) -> None:
    await store.invocations.add_many(
        [log(f"h{i}", T0 + timedelta(seconds=i), "hello") for i in range(5)]
        + [log(f"o{i}", T0 + timedelta(seconds=i), "other") for i in range(5)]
    )
    assert await collect(store, 2, "hello") == ["h4", "h3", "h2", "h1", "h0"]


async def test_add_many_writes_a_large_batch(store: Store) -> None:
    batch = [log(f"r{i:04d}", T0 + timedelta(milliseconds=i)) for i in range(250)]
    await store.invocations.add_many(batch)
    ids = await collect(store, 100)
    assert ids == [f"r{i:04d}" for i in reversed(range(250))]


async def test_add_many_is_idempotent_per_id(store: Store) -> None:
    await store.invocations.add_many([log("a"), log("b", T0 + timedelta(seconds=1))])
    # A retried batch: one log already stored (with different content), one new, one repeated.
    await store.invocations.add_many([log("a", stdout="retried"), log("c"), log("c")])
    page = await store.invocations.list()
    assert sorted(item.id for item in page.items) == ["a", "b", "c"]
    (first,) = [item for item in page.items if item.id == "a"]
    assert first.stdout == ""


async def test_naive_timestamps_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="naive"):
        await store.invocations.add_many([log("a", at=datetime(2026, 1, 1))])
    assert (await store.invocations.list()).items == []


async def test_logs_outlive_their_function(store: Store) -> None:
    await store.functions.create(
        FunctionConfig(name="hello", runtime="python", handler="h.h"), CodeBundle({})
    )
    await store.invocations.add_many([log("a"), log("b")])
    await store.functions.delete("hello")
    page = await store.invocations.list(function_name="hello")
    assert [item.id for item in page.items] == ["b", "a"]


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param("%%%", id="not-base64"),
        pytest.param(encode("f", "hello"), id="function-list-cursor"),
        pytest.param(encode("i", "yesterday", "a"), id="bad-time"),
        pytest.param(encode("i", "2026-01-01T00:00:00", "a"), id="naive-time"),
        pytest.param(encode("i", "2026-01-01T00:00:00+00:00"), id="too-short"),
    ],
)
async def test_malformed_cursors_are_rejected(store: Store, cursor: str) -> None:
    with pytest.raises(RequestInvalid, match="cursor"):
        await store.invocations.list(cursor=cursor)


async def test_limit_out_of_range_is_rejected(store: Store) -> None:
    with pytest.raises(RequestInvalid, match="limit"):
        await store.invocations.list(limit=0)


async def test_a_whole_second_timestamp_keeps_its_order(store: Store) -> None:
    """A datetime without microseconds serialises without a fraction; it must still sort."""
    whole = T0.replace(microsecond=0)
    await store.invocations.add_many(
        [log("whole", whole), log("later", whole + timedelta(microseconds=5))]
    )
    items = (await store.invocations.list()).items
    assert [(item.id, item.created_at) for item in items] == [
        ("later", whole + timedelta(microseconds=5)),
        ("whole", whole),
    ]


async def test_text_postgresql_cannot_hold_is_kept_not_refused(store: Store) -> None:
    """A handler may print NUL; PostgreSQL text cannot store it, so it becomes U+FFFD there
    (SQLite and the fake keep it) rather than the whole batch being refused."""
    await store.invocations.add_many([log("nul", stdout="a\x00b"), log("plain")])

    stored = {item.id: item for item in (await store.invocations.list()).items}
    assert set(stored) == {"nul", "plain"}
    assert stored["nul"].stdout in ("a\x00b", "a\ufffdb")


async def test_delete_older_than_keeps_to_an_environment_or_leaves_some_out(store: Store) -> None:
    prod, dev = Environment("acme", "shop", "prod"), Environment("acme", "shop", "dev")
    old = T0 - timedelta(days=10)
    await store.invocations.add_many(
        [
            log("default", old),
            log("prod", old, function="acme.shop.prod.f"),
            log("dev", old, function="acme.shop.dev.f"),
            log("prod-new", T0, function="acme.shop.prod.f"),
        ]
    )
    cutoff = T0 - timedelta(days=1)
    assert await store.invocations.delete_older_than(cutoff, 10, environment=prod) == 1
    assert await store.invocations.delete_older_than(cutoff, 10, excluding=[dev]) == 1
    remaining = sorted(item.id for item in (await store.invocations.list()).items)
    assert remaining == ["dev", "prod-new"]
    assert (
        await store.invocations.delete_older_than(cutoff, 10, environment=DEFAULT_ENVIRONMENT) == 0
    )
    assert await store.invocations.delete_older_than(cutoff, 10, environment=dev) == 1
