"""Function snapshots and scale to zero: /snapshots, /functions/{name}/snapshot and
/functions/{name}/instances (DELETE)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from nova.api.routes.functions import services
from nova.api.tenancy import full_name
from nova.sandbox.base import SnapshotInfo

router = APIRouter(tags=["snapshots"])


def snapshot_out(info: SnapshotInfo) -> dict[str, Any]:
    data = asdict(info)
    data["created_at"] = datetime.fromtimestamp(info.created_at, UTC).isoformat()
    if info.last_used_at is not None:
        data["last_used_at"] = datetime.fromtimestamp(info.last_used_at, UTC).isoformat()
    return data


@router.get("/snapshots", summary="Function snapshots: size, state, hits, misses, fallbacks")
async def list_snapshots(request: Request) -> dict[str, Any]:
    items = [snapshot_out(info) for info in services(request).snapshots.list()]
    return {"items": items, "next": None}


@router.post(
    "/functions/{name}/snapshot",
    status_code=201,
    summary="Build the snapshot the function's cold starts fork from, now",
)
async def create_snapshot(
    request: Request,
    name: str,
    qualifier: str | None = Query(None, description="a version or alias; default $LATEST"),
) -> dict[str, Any]:
    snapshots = services(request).snapshots
    return snapshot_out(await snapshots.create(full_name(request, name), qualifier))


@router.delete("/snapshots/{snapshot_id}", status_code=204, summary="Drop one snapshot")
async def delete_snapshot(request: Request, snapshot_id: str) -> Response:
    await services(request).snapshots.delete(snapshot_id)
    return Response(status_code=204)


@router.delete(
    "/functions/{name}/instances",
    summary="Scale to zero: stop the warm instances, keep the snapshot",
)
async def scale_to_zero(request: Request, name: str) -> dict[str, Any]:
    stopped = await services(request).snapshots.scale_to_zero(full_name(request, name))
    return {"stopped": stopped}
