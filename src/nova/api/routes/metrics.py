"""GET /metrics (and /metrics/prometheus): the Prometheus text format; GET /metrics/json."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from nova.api.routes.functions import services
from nova.observability.prometheus import TEXT_CONTENT_TYPE

router = APIRouter(tags=["observe"])


@router.get("/metrics", summary="Prometheus metrics (text exposition format)")
async def metrics(request: Request) -> Response:
    registry = services(request).metrics
    await registry.refresh()
    return Response(registry.text(), media_type=TEXT_CONTENT_TYPE)


@router.get("/metrics/prometheus", summary="Prometheus metrics (the same as GET /metrics)")
async def metrics_prometheus(request: Request) -> Response:
    return await metrics(request)


@router.get("/metrics/json", summary="The Prometheus metrics as JSON: family -> samples")
async def metrics_json(request: Request) -> dict[str, Any]:
    registry = services(request).metrics
    await registry.refresh()
    return registry.as_json()
