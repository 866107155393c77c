"""The static quotas of an environment (nova.core.quotas), checked before a function is stored.

A create counts one more function, its memory and its code; an update its new memory and its
code in place of the old. A change that asks for no more than the function already has is never
refused, so an environment over a quota that was lowered can still shrink towards it.

The check reads the environment's usage and then the service stores: two creates racing in
one environment may both pass and overshoot by one. Quotas bound teams sharing a daemon, not
an adversary timing requests; the per-function lock of the service keeps updates exact.
"""

from __future__ import annotations

from nova.core.models import FunctionConfig, FunctionRecord
from nova.core.quotas import QuotaExceeded, QuotaSource
from nova.core.tenancy import environment_of
from nova.store.ports import FunctionRepository


class QuotaChecks:
    def __init__(self, quotas: QuotaSource, functions: FunctionRepository) -> None:
        self._quotas = quotas
        self._functions = functions

    async def check_create(self, config: FunctionConfig, code_size: int) -> None:
        """``QuotaExceeded`` if creating ``config`` with ``code_size`` bytes of code would take
        its environment past a quota."""
        environment = environment_of(config.name)
        quotas = await self._quotas(environment)
        limit = quotas.max_memory_mb
        if limit is not None and config.memory_mb > limit:
            raise QuotaExceeded(environment, "max_memory_mb", limit, config.memory_mb)
        if quotas.max_functions is None and quotas.max_code_bytes is None:
            return  # the usage query is only paid for when a limit needs it
        count, total = await self._functions.usage(environment)
        limit = quotas.max_functions
        if limit is not None and count + 1 > limit:
            raise QuotaExceeded(environment, "max_functions", limit, count + 1)
        limit = quotas.max_code_bytes
        if limit is not None and total + code_size > limit:
            raise QuotaExceeded(environment, "max_code_bytes", limit, total + code_size)

    async def check_update(
        self, current: FunctionRecord, config: FunctionConfig, code_size: int | None
    ) -> None:
        """``QuotaExceeded`` if changing ``current`` to ``config`` (and to ``code_size`` bytes
        of code; None: the code stays) would take its environment past a quota."""
        environment = environment_of(current.name)
        grows_memory = config.memory_mb > current.config.memory_mb
        grows_code = code_size is not None and code_size > current.code_size
        if not (grows_memory or grows_code):
            return
        quotas = await self._quotas(environment)
        limit = quotas.max_memory_mb
        if grows_memory and limit is not None and config.memory_mb > limit:
            raise QuotaExceeded(environment, "max_memory_mb", limit, config.memory_mb)
        limit = quotas.max_code_bytes
        if grows_code and code_size is not None and limit is not None:
            _, total = await self._functions.usage(environment)
            after = total - current.code_size + code_size
            if after > limit:
                raise QuotaExceeded(environment, "max_code_bytes", limit, after)
