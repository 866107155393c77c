"""The in-memory fake of the ``SecretRepository`` port (see nova.store.memory)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import UTC, datetime

from nova.core.changes import ChangeKind
from nova.core.models import Page
from nova.core.secrets import SealedSecret, SecretInfo, SecretNotFound
from nova.core.tenancy import Environment
from nova.store import cursors
from nova.store.memory_state import MemoryState
from nova.store.ports import DEFAULT_PAGE_LIMIT


class MemorySecretRepository:
    def __init__(self, state: MemoryState) -> None:
        self._state = state

    async def put(self, sealed: SealedSecret) -> tuple[SecretInfo, bool]:
        self._state.check_open()
        now = datetime.now(UTC)
        previous = self._state.secrets.get(sealed.name)
        info = SecretInfo(sealed.name, previous[1].created_at if previous else now, now)
        self._state.secrets[sealed.name] = (sealed, info)
        self._state.record_change(ChangeKind.SECRET_CHANGED, "", "", secret=sealed.name)
        return info, previous is None

    async def get_many(self, names: Collection[str]) -> dict[str, SealedSecret]:
        self._state.check_open()
        stored = self._state.secrets
        return {name: stored[name][0] for name in names if name in stored}

    async def list(
        self,
        *,
        limit: int = DEFAULT_PAGE_LIMIT,
        cursor: str | None = None,
        environment: Environment | None = None,
    ) -> Page[SecretInfo]:
        self._state.check_open()
        cursors.check_limit(limit)
        after = cursors.decode(cursor, cursors.SECRETS, 1)[0] if cursor is not None else None
        names = sorted(
            name
            for name in self._state.secrets
            if (after is None or name > after)
            and (environment is None or environment.holds_secret(name))
        )
        items = [self._state.secrets[name][1] for name in names[:limit]]
        more = len(names) > limit
        return Page(items, cursors.encode(cursors.SECRETS, items[-1].name) if more else None)

    async def delete(self, name: str) -> SecretInfo:
        self._state.check_open()
        if name not in self._state.secrets:
            raise SecretNotFound(name)
        info = self._state.secrets.pop(name)[1]
        self._state.record_change(ChangeKind.SECRET_CHANGED, "", "", secret=name)
        return info

    async def reseal_all(self, reseal: Callable[[SealedSecret], SealedSecret]) -> int:
        self._state.check_open()
        resealed = {name: (reseal(row), info) for name, (row, info) in self._state.secrets.items()}
        self._state.secrets.update(resealed)  # only once every row resealed: all or none
        return len(resealed)
