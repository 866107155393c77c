"""The store's port for environments and their quotas. Contracts as in
:mod:`nova.store.ports`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from nova.core.quotas import Quotas
from nova.core.tenancy import Environment


@dataclass(frozen=True, slots=True)
class EnvironmentRecord:
    environment: Environment
    quotas: Quotas
    created_at: datetime


class EnvironmentRepository(Protocol):
    """Environments by ``org/project/env``. The default one is created with the schema and
    always exists."""

    async def create(self, record: EnvironmentRecord) -> EnvironmentRecord:
        """``EnvironmentExists`` when it does."""
        ...

    async def get(self, environment: Environment) -> EnvironmentRecord:
        """``EnvironmentNotFound``."""
        ...

    async def list(self) -> list[EnvironmentRecord]:
        """Every environment, by path (there are few)."""
        ...

    async def set_quotas(self, environment: Environment, quotas: Quotas) -> EnvironmentRecord:
        """``EnvironmentNotFound``."""
        ...

    async def delete(self, environment: Environment) -> EnvironmentRecord:
        """``EnvironmentNotFound``; ``EnvironmentNotEmpty`` (counting them) while functions or
        secrets of it exist, checked in the same transaction as the delete."""
        ...
