"""GET /metrics/timeseries and GET /functions/{name}/metrics: rolling per-minute and per-hour
buckets of this daemon's invocations."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Query, Request

from nova.api.routes.functions import services
from nova.api.tenancy import full_name
from nova.core.tenancy import short_name
from nova.observability.timeseries import InvocationSeries, Resolution

router = APIRouter(tags=["observe"])

_RESOLUTION = Query(
    Resolution.HOUR, description="hour: the last 24 hours; minute: the last 60 minutes"
)


def series_out(
    series: InvocationSeries, function: str | None, resolution: Resolution
) -> dict[str, Any]:
    return {
        "function": short_name(function) if function is not None else None,
        "resolution": resolution.value,
        "buckets": [
            {"start": bucket.start.isoformat(), **asdict(bucket.summary)}
            for bucket in series.buckets(function, resolution)
        ],
    }


@router.get(
    "/metrics/timeseries",
    summary="Invocations, errors, cold starts and p50/p95/p99 latency per hour (24) or minute (60)",
)
async def timeseries(
    request: Request,
    resolution: Resolution = _RESOLUTION,
    function: str | None = Query(None, description="one function; without it, all of them"),
) -> dict[str, Any]:
    name = full_name(request, function) if function is not None else None
    return series_out(services(request).series, name, resolution)


@router.get(
    "/functions/{name}/metrics",
    summary="The function's invocations, errors, cold starts and latency per hour or minute",
)
async def function_metrics(
    request: Request, name: str, resolution: Resolution = _RESOLUTION
) -> dict[str, Any]:
    svc = services(request)
    record = await svc.functions.get(full_name(request, name))
    return series_out(svc.series, record.name, resolution)
