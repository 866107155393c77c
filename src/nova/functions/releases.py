"""Publishing versions and pointing aliases at them: validate, store, then refresh serving.

The store does each change in one transaction with its change-log entry; ``refresh`` then
brings this daemon's serving state up to date at once (other daemons follow the change log).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from nova.core.errors import RequestInvalid
from nova.core.models import Page
from nova.core.names import validate_alias_name
from nova.core.tenancy import validate_full_name
from nova.core.versions import (
    MAX_ROUTED_VERSIONS,
    TOTAL_WEIGHT,
    AliasChange,
    AliasRecord,
    CanaryPolicy,
    FunctionVersion,
    Routing,
    VersionWeight,
)
from nova.store.ports import Store

Refresh = Callable[[str], Awaitable[None]]


class ReleaseService:
    def __init__(self, store: Store, refresh: Refresh) -> None:
        self._store = store
        self._refresh = refresh

    # -- versions ----------------------------------------------------------------------------

    async def publish(self, name: str, description: str) -> tuple[FunctionVersion, bool]:
        return await self._store.versions.publish(validate_full_name(name), description)

    async def versions(self, name: str, limit: int, cursor: str | None) -> Page[FunctionVersion]:
        return await self._store.versions.list(validate_full_name(name), limit=limit, cursor=cursor)

    async def version(self, name: str, number: int) -> FunctionVersion:
        return await self._store.versions.get(validate_full_name(name), number)

    async def delete_version(self, name: str, number: int) -> FunctionVersion:
        deleted = await self._store.versions.delete(validate_full_name(name), number)
        await self._refresh(name)
        return deleted

    # -- aliases -----------------------------------------------------------------------------

    async def set_alias(
        self,
        name: str,
        alias: str,
        routing: Routing,
        description: str,
        policy: CanaryPolicy | None,
    ) -> AliasRecord:
        validate_full_name(name)
        validate_alias_name(alias)
        record = await self._store.aliases.put(
            name, alias, checked_routing(routing), description=description, policy=policy
        )
        await self._refresh(name)
        return record

    async def alias(self, name: str, alias: str) -> AliasRecord:
        return await self._store.aliases.get(validate_full_name(name), alias)

    async def aliases(self, name: str) -> list[AliasRecord]:
        return await self._store.aliases.of(validate_full_name(name))

    async def delete_alias(self, name: str, alias: str) -> AliasRecord:
        deleted = await self._store.aliases.delete(validate_full_name(name), alias)
        await self._refresh(name)
        return deleted

    async def rollback(self, name: str, alias: str) -> AliasRecord:
        record = await self._store.aliases.rollback(validate_full_name(name), alias)
        await self._refresh(name)
        return record

    async def history(self, name: str, alias: str, limit: int) -> list[AliasChange]:
        await self.alias(name, alias)  # AliasNotFound rather than an empty history
        return await self._store.aliases.history(name, alias, limit)


def checked_routing(routing: Routing) -> Routing:
    """One version at 100, or two distinct versions with weights summing to 100."""
    field = "routing_config.weights"
    if not 1 <= len(routing) <= MAX_ROUTED_VERSIONS:
        raise RequestInvalid(
            f"{field}: route to one version, or to two with weights summing to "
            f"{TOTAL_WEIGHT}; got {len(routing)}"
        )
    for index, entry in enumerate(routing):
        if entry.version < 1:
            raise RequestInvalid(
                f"{field}[{index}].version: {entry.version} is not a version number"
            )
        if not 1 <= entry.weight <= TOTAL_WEIGHT:
            raise RequestInvalid(f"{field}[{index}].weight: {entry.weight} is not within 1-100")
    if len({entry.version for entry in routing}) != len(routing):
        raise RequestInvalid(f"{field}: version {routing[0].version} is listed twice")
    total = sum(entry.weight for entry in routing)
    if total != TOTAL_WEIGHT:
        raise RequestInvalid(f"{field}: the weights sum to {total}, not {TOTAL_WEIGHT}")
    return tuple(VersionWeight(entry.version, entry.weight) for entry in routing)
