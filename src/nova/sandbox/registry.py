"""The sandbox backends this daemon can use, and which one a function runs on.

The daemon builds one registry at start-up (sandbox/selection.py). A function runs on its own
`backend` if it names one, else on the daemon's default; a function that names a backend this
host cannot run is refused when it is created or updated, with the backend's reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from nova.core.errors import NovaError
from nova.sandbox.base import BackendInfo, SandboxBackend, SnapshotStore, SnapshottingBackend

BACKEND_NAMES = ("auto", "container", "gvisor", "microvm", "process")


class BackendUnavailable(NovaError):
    code = "Sandbox.Unavailable"
    status = 422


class BackendRegistry:
    def __init__(
        self, default: str, backends: Mapping[str, SandboxBackend], infos: list[BackendInfo]
    ) -> None:
        self.default = default
        self._backends = dict(backends)
        self.infos = infos

    @classmethod
    def single(cls, backend: SandboxBackend) -> BackendRegistry:
        """A registry of one backend, the default (tests, embedding)."""
        return cls(backend.info.name, {backend.info.name: backend}, [backend.info])

    @property
    def default_info(self) -> BackendInfo:
        return self._backends[self.default].info

    def resolve(self, name: str | None) -> str:
        """The backend a function with this `backend` field runs on (None/"auto": the default)."""
        if name in (None, "", "auto"):
            return self.default
        if name not in BACKEND_NAMES:
            raise BackendUnavailable(
                f"backend: unknown backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}"
            )
        if name not in self._backends:
            reason = next(
                (info.reason for info in self.infos if info.name == name), "not configured"
            )
            raise BackendUnavailable(f"backend: {name!r} is unavailable on this host: {reason}")
        return name

    def get(self, name: str | None) -> SandboxBackend:
        return self._backends[self.resolve(name)]

    def snapshot_stores(self) -> list[SnapshotStore]:
        """The function snapshots of every backend that keeps them."""
        return [
            backend.function_snapshots
            for backend in self._backends.values()
            if isinstance(backend, SnapshottingBackend) and backend.function_snapshots is not None
        ]

    def snapshot_store(self, name: str | None) -> SnapshotStore | None:
        backend = self.get(name)
        return backend.function_snapshots if isinstance(backend, SnapshottingBackend) else None

    async def close(self) -> None:
        await asyncio.gather(*(backend.close() for backend in self._backends.values()))
