"""Retry rules by error kind: defaults, overrides, backoff with jitter, validation."""

from __future__ import annotations

import random

import pytest

from nova.core.errors import RequestInvalid
from nova.core.models import FunctionConfig
from nova.events.destinations import Destination
from nova.events.policy import (
    DEFAULT_RULES,
    ErrorKind,
    RetryPolicy,
    RetryRule,
    check_async_config,
    kind_of,
)


def _config(**fields: object) -> FunctionConfig:
    return FunctionConfig(name="f", runtime="python", handler="handler.handler", **fields)  # type: ignore[arg-type]


def test_error_types_map_to_kinds() -> None:
    assert kind_of("Function.Timeout") is ErrorKind.TIMEOUT
    assert kind_of("Function.OutOfMemory") is ErrorKind.OUT_OF_MEMORY
    assert kind_of("Function.TooManyRequests") is ErrorKind.THROTTLED
    assert kind_of("ValueError") is ErrorKind.HANDLER_ERROR
    assert kind_of("Sandbox.Failed") is ErrorKind.HANDLER_ERROR


def test_overrides_keep_the_defaults_they_do_not_name() -> None:
    policy = RetryPolicy.of(_config(async_retry={"timeout": {"attempts": 5}}, async_max_age_s=60))
    assert policy.rule("Function.Timeout") == RetryRule(5, 1.0, 300.0)
    assert policy.rule("ValueError") == DEFAULT_RULES[ErrorKind.HANDLER_ERROR]
    assert policy.max_age_s == 60


def test_backoff_doubles_up_to_the_cap_with_equal_jitter() -> None:
    rule = RetryRule(attempts=10, backoff_s=1.0, max_backoff_s=8.0)
    rng = random.Random(7)
    for attempt, full in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        delays = [rule.delay_s(attempt, rng) for _ in range(200)]
        assert min(delays) >= full / 2
        assert max(delays) <= full
        assert max(delays) - min(delays) > full / 4  # jittered, not constant


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"async_retry": {"sometimes": {}}}, "async_retry"),
        ({"async_retry": {"timeout": {"tries": 2}}}, "async_retry.timeout"),
        ({"async_retry": {"timeout": {"attempts": 0}}}, "async_retry.timeout.attempts"),
        ({"async_retry": {"timeout": {"attempts": 1.5}}}, "async_retry.timeout.attempts"),
        ({"async_retry": {"throttled": {"backoff_s": -1}}}, "async_retry.throttled.backoff_s"),
        ({"async_max_age_s": 0.0}, "async_max_age_s"),
        ({"async_max_age_s": float("inf")}, "async_max_age_s"),
    ],
)
def test_bad_policies_are_refused_naming_the_field(fields: dict[str, object], named: str) -> None:
    with pytest.raises(RequestInvalid, match=named.replace(".", r"\.")):
        check_async_config(_config(**fields))


def test_destinations_parse() -> None:
    assert Destination.parse("on_success", "") is None
    assert Destination.parse("on_success", "function:audit") == Destination("audit", "")
    assert Destination.parse("on_failure", "function:audit:prod") == Destination("audit", "prod")
    for bad in ("audit", "queue:x", "function:", "function:Bad_Name"):
        with pytest.raises(RequestInvalid, match="on_failure"):
            Destination.parse("on_failure", bad)


def test_config_document_round_trips_the_async_fields() -> None:
    config = _config(
        async_retry={"timeout": {"attempts": 2}},
        async_max_age_s=120,
        on_success="function:a",
        on_failure="function:b",
    )
    document = config.document()
    assert document["async_retry"] == {"timeout": {"attempts": 2}}
    assert FunctionConfig.from_document("f", document) == config
    assert (
        FunctionConfig.from_document("f", {"runtime": "python", "handler": "h.h"}).on_failure == ""
    )
