"""Which bucket a request spends: its credential's tier, and its function's when listed."""

from __future__ import annotations

from collections.abc import Mapping

from nova.core.errors import NovaError
from nova.ratelimit.buckets import Tier


class RatePolicy:
    def __init__(
        self,
        tiers: Mapping[str, Tier],
        default_tier: str,
        keys: Mapping[str, str],
        functions: Mapping[str, str],
    ) -> None:
        self._default = tiers[default_tier]
        self._keys = {key: tiers[name] for key, name in keys.items()}
        self._functions = {function: tiers[name] for function, name in functions.items()}

    @property
    def limits_functions(self) -> bool:
        return bool(self._functions)

    def tier_of(self, credential: str) -> Tier:
        return self._keys.get(credential, self._default)

    def function_tier(self, function: str) -> Tier | None:
        return self._functions.get(function)


class RateLimited(NovaError):
    """A credential (or a function) spent its tier's budget; Retry-After says when to retry."""

    code = "RateLimit.Exceeded"
    status = 429
