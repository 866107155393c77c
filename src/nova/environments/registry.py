"""What the API and the quota checks ask of environments: create, list, change quotas, delete,
and — on the request path — whether one exists and what its quotas are.

The last two are cached for ``cache_s`` (2 s): a request naming an environment must not cost a
store round trip, and an environment or quota changed through another daemon sharing the store
takes effect there within that time. This daemon's own changes apply at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from nova.core.quotas import Quotas
from nova.core.tenancy import (
    Environment,
    EnvironmentProtected,
    parse_environment,
)
from nova.store.tenancy_ports import EnvironmentRecord, EnvironmentRepository


class EnvironmentRegistry:
    def __init__(
        self,
        repository: EnvironmentRepository,
        cache_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._repository = repository
        self._cache_s = cache_s
        self._clock = clock
        self._known: dict[Environment, tuple[Quotas, float]] = {}  # -> (quotas, when read)

    async def create(self, path: str, quotas: Mapping[str, object]) -> EnvironmentRecord:
        """``RequestInvalid`` for a bad path or quota, ``EnvironmentExists``."""
        environment = parse_environment(path)
        record = EnvironmentRecord(environment, Quotas().changed(dict(quotas)), datetime.now(UTC))
        return self._remember(await self._repository.create(record))

    async def get(self, environment: Environment) -> EnvironmentRecord:
        return self._remember(await self._repository.get(environment))

    async def list(self) -> list[EnvironmentRecord]:
        return [self._remember(record) for record in await self._repository.list()]

    async def set_quotas(
        self, environment: Environment, values: Mapping[str, object]
    ) -> EnvironmentRecord:
        """The quotas named in ``values`` set (None lifts one); the others kept."""
        quotas = (await self._repository.get(environment)).quotas.changed(dict(values))
        return self._remember(await self._repository.set_quotas(environment, quotas))

    async def delete(self, environment: Environment) -> EnvironmentRecord:
        """``EnvironmentProtected`` for the default one, ``EnvironmentNotEmpty``."""
        if environment.is_default:
            raise EnvironmentProtected()
        record = await self._repository.delete(environment)
        self._known.pop(environment, None)
        return record

    async def require(self, environment: Environment) -> None:
        """``EnvironmentNotFound`` unless ``environment`` exists."""
        await self.quotas(environment)

    async def quotas(self, environment: Environment) -> Quotas:
        """The environment's quotas (``EnvironmentNotFound`` if it does not exist)."""
        known = self._known.get(environment)
        if known is not None and self._clock() - known[1] < self._cache_s:
            return known[0]
        return self._remember(await self._repository.get(environment)).quotas

    async def all_quotas(self) -> dict[Environment, Quotas]:
        """Every environment with quotas set."""
        records = await self.list()
        return {r.environment: r.quotas for r in records if not r.quotas.unlimited}

    def _remember(self, record: EnvironmentRecord) -> EnvironmentRecord:
        self._known[record.environment] = (record.quotas, self._clock())
        return record
