"""GET /slo: each function's success rate, warm and cold p95 and cold-start ratio over a window,
against the configured targets, with the error budget left."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Query, Request

from nova.api.routes.functions import services
from nova.api.tenancy import environment, full_name
from nova.core.tenancy import short_name
from nova.observability.slo import SloReport, SloTargets, evaluate

router = APIRouter(tags=["observe"])


def report_out(report: SloReport) -> dict[str, Any]:
    shown = {**asdict(report), "breaches": list(report.breaches), "met": report.met}
    return {**shown, "function": short_name(report.function)}


@router.get("/slo", summary="SLOs per function: measured over a window against the targets")
async def slo(
    request: Request,
    window_s: int | None = Query(
        None, ge=60, le=86400, description="seconds back from now (default slo.window_s)"
    ),
    function: str | None = Query(None, description="one function; without it, every one invoked"),
) -> dict[str, Any]:
    svc = services(request)
    settings = svc.settings.slo
    window = window_s or settings.window_s
    here = environment(request.scope)
    names = (
        [full_name(request, function)]
        if function is not None
        else [name for name in svc.series.functions() if here.holds(name)]
    )
    reports = [
        evaluate(
            name,
            window,
            svc.series.window(name, window),
            SloTargets(**settings.targets_for(name).model_dump()),
        )
        for name in names
    ]
    return {"window_s": window, "items": [report_out(report) for report in reports], "next": None}
