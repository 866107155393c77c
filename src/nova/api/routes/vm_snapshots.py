"""VM snapshots of the microvm backend: list them, evict a function's."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request

from nova.api.routes.functions import services
from nova.sandbox.microvm.backend import MicrovmBackend
from nova.sandbox.microvm.snapshots import SnapshotEntry, SnapshotStore
from nova.sandbox.registry import BackendUnavailable

router = APIRouter(tags=["vm-snapshots"])


def _store(request: Request) -> SnapshotStore:
    backend = services(request).sandboxes.get("microvm")  # Sandbox.Unavailable if it is not
    if not isinstance(backend, MicrovmBackend):
        raise BackendUnavailable("backend: 'microvm' is not the microvm backend on this daemon")
    return backend.snapshots


def _out(entry: SnapshotEntry) -> dict[str, Any]:
    return {
        "name": entry.name,
        "function": entry.function,
        "key": entry.key,
        "disk_bytes": entry.disk_bytes,
        "created_at": datetime.fromtimestamp(entry.created_at, UTC).isoformat(),
        "last_used_at": datetime.fromtimestamp(entry.last_used_at, UTC).isoformat(),
    }


@router.get("/vm-snapshots", summary="VM snapshots the microvm backend restores instances from")
async def list_vm_snapshots(request: Request) -> dict[str, Any]:
    entries = await asyncio.to_thread(_store(request).entries)
    return {"items": [_out(entry) for entry in entries], "next": None}


@router.delete(
    "/vm-snapshots/{function}",
    summary="Evict a function's VM snapshots: its next start boots (and saves a new one)",
)
async def evict_vm_snapshots(request: Request, function: str) -> dict[str, Any]:
    removed = await asyncio.to_thread(_store(request).evict, function)
    return {
        "removed": [_out(entry) for entry in removed],
        "freed_bytes": sum(entry.disk_bytes for entry in removed),
    }
