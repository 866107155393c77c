"""Environments in memory (the ``EnvironmentRepository`` port), for tests and ``:memory:``."""

from __future__ import annotations

import dataclasses

from nova.core.quotas import Quotas
from nova.core.tenancy import (
    Environment,
    EnvironmentExists,
    EnvironmentNotEmpty,
    EnvironmentNotFound,
)
from nova.store.memory_state import MemoryState
from nova.store.tenancy_ports import EnvironmentRecord


class MemoryEnvironmentRepository:
    def __init__(self, state: MemoryState) -> None:
        self._state = state

    async def create(self, record: EnvironmentRecord) -> EnvironmentRecord:
        self._state.check_open()
        if record.environment.path in self._state.environments:
            raise EnvironmentExists(record.environment.path)
        self._state.environments[record.environment.path] = record
        return record

    async def get(self, environment: Environment) -> EnvironmentRecord:
        self._state.check_open()
        record = self._state.environments.get(environment.path)
        if record is None:
            raise EnvironmentNotFound(environment.path)
        return record

    async def list(self) -> list[EnvironmentRecord]:
        self._state.check_open()
        return [self._state.environments[path] for path in sorted(self._state.environments)]

    async def set_quotas(self, environment: Environment, quotas: Quotas) -> EnvironmentRecord:
        record = dataclasses.replace(await self.get(environment), quotas=quotas)
        self._state.environments[environment.path] = record
        return record

    async def delete(self, environment: Environment) -> EnvironmentRecord:
        record = await self.get(environment)
        held = sum(environment.holds(name) for name in self._state.functions)
        sealed = sum(environment.holds_secret(name) for name in self._state.secrets)
        if held or sealed:
            raise EnvironmentNotEmpty(environment.path, held, sealed)
        del self._state.environments[environment.path]
        return record
