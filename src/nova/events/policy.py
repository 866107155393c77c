"""How failed asynchronous invocations are retried: a rule per kind of error.

A function's ``async_retry`` maps an error kind to ``{attempts, backoff_s, max_backoff_s}``;
kinds it leaves out, and keys a rule leaves out, take the defaults below. ``attempts`` counts
every run of the event (the first one too), whatever failed before: the event goes to the dead
letters when the attempt that just failed has a number of at least its kind's ``attempts``, or
when the next one would start after ``async_max_age_s`` from the submit.

The delay before attempt ``n + 1`` is ``min(max_backoff_s, backoff_s * 2 ** (n - 1))``, of
which a random half is taken away ("equal jitter"), so events that failed together do not come
back together.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from nova.core.errors import RequestInvalid
from nova.core.models import FunctionConfig


class ErrorKind(StrEnum):
    TIMEOUT = "timeout"  # Function.Timeout
    OUT_OF_MEMORY = "out_of_memory"  # Function.OutOfMemory
    THROTTLED = "throttled"  # no instance was free within pool.queue_timeout_s
    HANDLER_ERROR = "handler_error"  # anything else the handler, its runtime or sandbox raised


_KIND_OF_TYPE = {
    "Function.Timeout": ErrorKind.TIMEOUT,
    "Function.OutOfMemory": ErrorKind.OUT_OF_MEMORY,
    "Function.TooManyRequests": ErrorKind.THROTTLED,
}


def kind_of(error_type: str) -> ErrorKind:
    return _KIND_OF_TYPE.get(error_type, ErrorKind.HANDLER_ERROR)


@dataclass(frozen=True, slots=True)
class RetryRule:
    attempts: int
    backoff_s: float
    max_backoff_s: float

    def delay_s(self, attempt: int, rng: random.Random) -> float:
        """How long to wait after failed attempt number ``attempt`` (1 for the first)."""
        full = min(self.max_backoff_s, self.backoff_s * 2.0 ** min(attempt - 1, 60))
        return full / 2 + rng.uniform(0, full / 2)


DEFAULT_RULES: Mapping[ErrorKind, RetryRule] = {
    ErrorKind.HANDLER_ERROR: RetryRule(attempts=3, backoff_s=1.0, max_backoff_s=300.0),
    ErrorKind.TIMEOUT: RetryRule(attempts=3, backoff_s=1.0, max_backoff_s=300.0),
    ErrorKind.OUT_OF_MEMORY: RetryRule(attempts=2, backoff_s=1.0, max_backoff_s=300.0),
    # Throttling passes as load does: many short waits rather than a few failures.
    ErrorKind.THROTTLED: RetryRule(attempts=20, backoff_s=1.0, max_backoff_s=60.0),
}
MAX_ATTEMPTS = 100
MAX_BACKOFF_S = 86400.0
MAX_EVENT_AGE_S = 7 * 86400.0
MIN_EVENT_AGE_S = 1.0
_RULE_KEYS = ("attempts", "backoff_s", "max_backoff_s")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    rules: Mapping[ErrorKind, RetryRule]
    max_age_s: float

    @classmethod
    def of(cls, config: FunctionConfig) -> RetryPolicy:
        rules = dict(DEFAULT_RULES)
        for kind, given in config.async_retry.items():
            base = rules[ErrorKind(kind)]
            rules[ErrorKind(kind)] = RetryRule(
                attempts=int(given.get("attempts", base.attempts)),
                backoff_s=float(given.get("backoff_s", base.backoff_s)),
                max_backoff_s=float(given.get("max_backoff_s", base.max_backoff_s)),
            )
        return cls(rules, config.async_max_age_s)

    def rule(self, error_type: str) -> RetryRule:
        return self.rules[kind_of(error_type)]


def check_async_config(config: FunctionConfig) -> None:
    """RequestInvalid (422) naming the first bad asynchronous-invocation field."""
    kinds = ", ".join(kind.value for kind in ErrorKind)
    for kind, rule in config.async_retry.items():
        if kind not in ErrorKind.__members__.values():
            raise RequestInvalid(f"async_retry: {kind!r} is not an error kind; use {kinds}")
        for key, value in rule.items():
            if key not in _RULE_KEYS:
                raise RequestInvalid(
                    f"async_retry.{kind}: {key!r} is not a rule key; use {', '.join(_RULE_KEYS)}"
                )
            high = MAX_ATTEMPTS if key == "attempts" else MAX_BACKOFF_S
            low = 1 if key == "attempts" else 0
            whole = key != "attempts" or float(value).is_integer()
            if not math.isfinite(value) or not low <= value <= high or not whole:
                raise RequestInvalid(
                    f"async_retry.{kind}.{key}: {value!r} must be "
                    f"{'a whole number ' if key == 'attempts' else ''}from {low} to {high:g}"
                )
    age = config.async_max_age_s
    if not math.isfinite(age) or not MIN_EVENT_AGE_S <= age <= MAX_EVENT_AGE_S:
        raise RequestInvalid(
            f"async_max_age_s: {age!r} is outside {MIN_EVENT_AGE_S:g}-{MAX_EVENT_AGE_S:g} s"
        )
