"""Route matching: longest prefix at segment boundaries, method before ANY, 405 for a prefix
without the method; prefixes that would shadow Nova's API or are malformed are refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from nova.core.errors import RequestInvalid
from nova.core.triggers import Route, RouteSpec
from nova.http_triggers.table import RouteTable, validate_method, validate_prefix


def _route(method: str, prefix: str, function: str) -> Route:
    return Route(f"{method}{prefix}", method, prefix, RouteSpec(function, ""), datetime.now(UTC))


TABLE = RouteTable(
    [
        _route("ANY", "/hooks", "short"),
        _route("POST", "/hooks/gh", "github"),
        _route("GET", "/only-get", "getter"),
    ]
)


@pytest.mark.parametrize(
    ("method", "path", "function"),
    [
        ("POST", "/hooks/gh", "github"),
        ("POST", "/hooks/gh/push/1", "github"),
        ("GET", "/hooks/gh/push", "short"),  # no GET route on the longer prefix
        ("POST", "/hooks/ghost", "short"),  # a segment boundary, not a string prefix
        ("DELETE", "/hooks", "short"),
    ],
)
def test_longest_prefix_then_method(method: str, path: str, function: str) -> None:
    match = TABLE.match(method, path)
    assert match is not None
    assert match.route is not None
    assert match.route.spec.function == function


def test_no_prefix_and_wrong_method() -> None:
    assert TABLE.match("GET", "/hooksy") is None
    assert TABLE.match("GET", "/functions/x") is None
    not_allowed = TABLE.match("POST", "/only-get/x")
    assert not_allowed is not None
    assert not_allowed.route is None
    assert not RouteTable()


@pytest.mark.parametrize(
    "prefix", ["", "/", "hooks", "/hooks/", "/a//b", "/a/../b", "/a b", "/functions/x", "/fn"]
)
def test_bad_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(RequestInvalid, match=r"^path_prefix:"):
        validate_prefix(prefix, {"functions", "fn"})


def test_methods() -> None:
    assert validate_method("post") == "POST"
    with pytest.raises(RequestInvalid, match=r"^method:"):
        validate_method("FETCH")
