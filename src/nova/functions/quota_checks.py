"""The static quotas of an environment (nova.core.quotas), checked before a function is stored.

A create counts one more function, its memory and its code; an update its new memory and its
code in place of the old. A change that asks for no more than the function already has is never
refused, so an environment over a quota that was lowered can still shrink towards it.

A check that counts the environment's functions or code holds the environment until the caller
has stored the change, so changes racing on one daemon are counted one after the other (and
changes of environments without such quotas never wait for each other). Daemons sharing a store
do not share this hold: two of them may each let one more function in.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from nova.core.models import FunctionConfig, FunctionRecord
from nova.core.quotas import QuotaExceeded, QuotaSource
from nova.core.tenancy import environment_of
from nova.functions.locks import KeyedLock
from nova.store.ports import FunctionRepository


class QuotaChecks:
    def __init__(self, quotas: QuotaSource, functions: FunctionRepository) -> None:
        self._quotas = quotas
        self._functions = functions
        self._counting = KeyedLock()  # environment path -> one counted change at a time

    @contextlib.asynccontextmanager
    async def creating(self, config: FunctionConfig, code_size: int) -> AsyncIterator[None]:
        """Entered when creating ``config`` with ``code_size`` bytes of code keeps its
        environment within its quotas (else ``QuotaExceeded``); store the function inside."""
        environment = environment_of(config.name)
        quotas = await self._quotas(environment)
        limit = quotas.max_memory_mb
        if limit is not None and config.memory_mb > limit:
            raise QuotaExceeded(environment, "max_memory_mb", limit, config.memory_mb)
        if quotas.max_functions is None and quotas.max_code_bytes is None:
            yield  # nothing is counted: the usage query and the hold are not paid for
            return
        async with self._counting.hold(environment.path):
            count, total = await self._functions.usage(environment)
            limit = quotas.max_functions
            if limit is not None and count + 1 > limit:
                raise QuotaExceeded(environment, "max_functions", limit, count + 1)
            limit = quotas.max_code_bytes
            if limit is not None and total + code_size > limit:
                raise QuotaExceeded(environment, "max_code_bytes", limit, total + code_size)
            yield

    @contextlib.asynccontextmanager
    async def updating(
        self, current: FunctionRecord, config: FunctionConfig, code_size: int | None
    ) -> AsyncIterator[None]:
        """Entered when changing ``current`` to ``config`` (and to ``code_size`` bytes of
        code; None: the code stays) keeps its environment within its quotas (else
        ``QuotaExceeded``); store the change inside."""
        environment = environment_of(current.name)
        grows_memory = config.memory_mb > current.config.memory_mb
        grows_code = code_size is not None and code_size > current.code_size
        quotas = await self._quotas(environment) if grows_memory or grows_code else None
        limit = None if quotas is None else quotas.max_memory_mb
        if grows_memory and limit is not None and config.memory_mb > limit:
            raise QuotaExceeded(environment, "max_memory_mb", limit, config.memory_mb)
        limit = None if quotas is None else quotas.max_code_bytes
        if code_size is None or not grows_code or limit is None:
            yield  # asks for no more code, or its size is not limited
            return
        async with self._counting.hold(environment.path):
            _, total = await self._functions.usage(environment)
            after = total - current.code_size + code_size
            if after > limit:
                raise QuotaExceeded(environment, "max_code_bytes", limit, after)
            yield
