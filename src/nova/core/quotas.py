"""Per-environment quotas: what one environment may hold and run, so one team cannot take a
shared daemon's memory, disk or concurrency from the others.

Every limit is optional (None: no limit), and an environment without quotas costs nothing on the
invoke path. The static ones (functions, memory, code) are checked when a function is created or
changed; concurrency when an invocation starts; log retention by the retention sweep.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, fields

from nova.core.errors import NovaError, RequestInvalid, TooManyRequests
from nova.core.tenancy import Environment


@dataclass(frozen=True, slots=True)
class Quotas:
    max_functions: int | None = None  # functions in the environment
    max_memory_mb: int | None = None  # memory_mb of any one function
    max_code_bytes: int | None = None  # the code of all its functions together
    max_concurrency: int | None = None  # invocations running at once (per daemon)
    log_retention_days: float | None = None  # invocation records kept (None: the daemon's)

    @property
    def unlimited(self) -> bool:
        return all(value is None for value in asdict(self).values())

    def changed(self, values: dict[str, object]) -> Quotas:
        """These quotas with ``values`` (quota name -> limit, None lifting it) applied;
        ``RequestInvalid`` naming an unknown quota or a limit that is not positive."""
        known = {item.name for item in fields(self)}
        merged = asdict(self)
        for name, value in values.items():
            if name not in known:
                raise RequestInvalid(
                    f"quotas: {name[:60]!r} is not a quota; use {', '.join(sorted(known))}"
                )
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or value <= 0
            ):
                raise RequestInvalid(f"quotas.{name}: give a positive number, or null for none")
            if value is not None and name != "log_retention_days":
                if value != int(value):
                    raise RequestInvalid(f"quotas.{name}: give a whole number")
                value = int(value)
            merged[name] = value
        return Quotas(**merged)


# The quotas of an environment (Quotas() when it has none).
QuotaSource = Callable[[Environment], Awaitable[Quotas]]
# Every environment that has quotas, with them (for sweeps over all environments).
AllQuotas = Callable[[], Awaitable[Mapping[Environment, Quotas]]]


class QuotaExceeded(NovaError):
    """A create or change would take the environment past one of its quotas."""

    code = "Quota.Exceeded"
    status = 409

    def __init__(self, environment: Environment, quota: str, limit: float, wanted: float) -> None:
        super().__init__(
            f"environment {environment} would exceed its quota {quota} ({wanted:g} > limit "
            f"{limit:g}); free some up, or raise it: `nova env quota {environment} --set "
            f"{quota}=N` (an admin of every environment)"
        )
        self.quota = quota


class ConcurrencyQuotaExceeded(TooManyRequests):
    """The environment already runs as many invocations as its quota allows."""

    code = "Quota.ConcurrencyExceeded"

    def __init__(self, environment: Environment, limit: int) -> None:
        super().__init__(
            f"environment {environment} is running {limit} invocations, its quota "
            "max_concurrency; retry after a moment, or raise the quota with `nova env quota`"
        )
