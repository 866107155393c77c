"""Read-only views: invocation logs, runtimes, pool stats, health (F9 logs, F16)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.responses import JSONResponse

from nova.api.context import Services
from nova.api.routes.functions import services
from nova.api.routes.triggers import consumer_out
from nova.api.tenancy import environment, full_name
from nova.core.errors import MalformedJson, NovaError
from nova.core.models import InvocationLog
from nova.core.tenancy import short_name
from nova.runtimes.registered import RuntimeDefinition

router = APIRouter(tags=["observe"])


def log_out(log: InvocationLog) -> dict[str, Any]:
    data = asdict(log)
    data["created_at"] = log.created_at.isoformat()
    data["function_name"] = short_name(log.function_name)
    return data


@router.get("/functions/{name}/logs", summary="Invocation logs of one function, newest first")
async def function_logs(
    request: Request, name: str, limit: int = Query(50, ge=1, le=1000), cursor: str | None = None
) -> dict[str, Any]:
    svc = services(request)
    record = await svc.functions.get(full_name(request, name))
    # By id: a function created again under a deleted one's name starts with no history.
    page = await svc.store.invocations.list(function_id=record.id, limit=limit, cursor=cursor)
    return {"items": [log_out(log) for log in page.items], "next": page.next}


@router.get("/functions/{name}/instances", summary="The function's running instances")
async def function_instances(request: Request, name: str) -> dict[str, Any]:
    svc = services(request)
    record = await svc.functions.get(full_name(request, name))
    items = [
        {**asdict(info), "version": pool.deployment.version}
        for pool in svc.pools.of_function(record.id)
        for info in pool.instances()
    ]
    return {"items": items, "next": None, "backend": svc.sandboxes.default}


@router.get("/invocations", summary="Invocation logs of all functions, newest first")
async def invocations(
    request: Request,
    limit: int = Query(50, ge=1, le=1000),
    cursor: str | None = None,
    function: str | None = Query(
        None, description="every function that had this name, deleted ones included"
    ),
    function_id: str | None = Query(None, description="one function, by its id"),
) -> dict[str, Any]:
    page = await services(request).store.invocations.list(
        function_name=full_name(request, function) if function is not None else None,
        function_id=function_id,
        limit=limit,
        cursor=cursor,
        environment=environment(request.scope),
    )
    return {"items": [log_out(log) for log in page.items], "next": page.next}


@router.post(
    "/runtimes",
    status_code=201,
    summary="Register a runtime: a Lambda Runtime API client (bootstrap) in any language the "
    "sandbox has an interpreter for, its file extension, default handler and env",
)
async def register_runtime(request: Request) -> dict[str, Any]:
    svc = services(request)
    try:
        document = await request.json()
    except ValueError as exc:
        raise MalformedJson(f"the body is not valid JSON: {exc}") from None
    definition = RuntimeDefinition.parse(document if isinstance(document, dict) else {})
    status = svc.runtimes.register(definition)
    registered = svc.registered_runtimes
    if registered is not None:
        await asyncio.to_thread(registered.save, [*registered.load(), definition])
    return {"name": status.spec.name, "available": status.available, "reason": status.reason}


@router.get("/runtimes", summary="Runtimes and sandbox backends, with availability")
async def runtimes(request: Request) -> dict[str, Any]:
    svc = services(request)
    items = [
        {
            "name": status.spec.name,
            "available": status.available,
            "reason": status.reason,
            "version": status.version,
            "interpreter": status.interpreter,
            "extension": status.spec.extension,
            "extensions": [status.spec.extension],
            "default_handler": status.spec.default_handler,
            "registered": status.spec.bootstrap is not None,
        }
        for status in svc.runtimes.all()
    ]
    return {
        "items": items,
        "next": None,
        "backend": svc.sandboxes.default,
        "backends": [asdict(b) for b in svc.sandboxes.infos],
    }


@router.get("/stats", summary="Pool and invocation counters")
async def stats(request: Request) -> dict[str, Any]:
    """``invocations``: running totals of every daemon sharing the store, kept across restarts
    (``persisted`` false when the store cannot be read: then this daemon's own counts);
    ``this_daemon``: what this daemon counted since it started."""
    svc = services(request)
    pools = [asdict(stat) for stat in svc.pools.stats()]
    since_start = svc.executor.counters.as_dict()
    try:
        totals, persisted = await svc.counters.totals(), True
    except NovaError:
        totals, persisted = since_start, False
    return {
        "pools": pools,
        "instances": sum(p["instances"] for p in pools),
        "busy": sum(p["busy"] for p in pools),
        "invocations": {**totals, "persisted": persisted},
        "this_daemon": since_start,
        "inflight": svc.executor.inflight.count,
        "logs": asdict(svc.log_batcher.stats()),
        "async": await _async_stats(svc),
        "triggers": _trigger_stats(svc),
    }


async def _async_stats(svc: Services) -> dict[str, Any]:
    """The queue of asynchronous invocations (every daemon's, from the store): ``pending`` and
    ``running`` make its depth; ``oldest_age_s`` is how long its oldest unfinished event has
    waited; ``dead`` the dead letters; ``running_here`` what this daemon runs now."""
    try:
        queue, available = asdict(await svc.invocations.stats()), True
    except NovaError:
        queue, available = {}, False
    return {**queue, "running_here": svc.async_worker.running, "persisted": available}


def _trigger_stats(svc: Services) -> list[dict[str, Any]]:
    """This daemon's queue-trigger consumers: state and message counts since it started."""
    return [
        {"name": c.trigger.name, "source": c.trigger.source.value, **consumer_out(c)}
        for c in svc.triggers.manager.consumers()
    ]


@router.get(
    "/health",
    summary="Detailed health: store, pools, backend, and each queue trigger's consumer "
    "(connected, or reconnecting with the last error)",
)
async def health(request: Request) -> JSONResponse:
    svc = services(request)
    store_ok, store_error = await _store_status(request)
    body = {
        "status": "ok" if store_ok else "degraded",
        "store": {"ok": store_ok, "error": store_error},
        "backend": asdict(svc.sandboxes.default_info),
        "backends": [asdict(b) for b in svc.sandboxes.infos],
        "pools": {
            "functions": len(svc.pools.stats()),
            "instances": sum(s.instances for s in svc.pools.stats()),
        },
        "uptime_s": round(time.monotonic() - svc.started_at, 3),
        "triggers": _trigger_stats(svc),
    }
    return JSONResponse(body, status_code=200 if store_ok else 503)


@router.get("/health/live", summary="Liveness: the process answers")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/health/ready", summary="Readiness: started, not draining, store reachable")
async def ready(request: Request) -> JSONResponse:
    svc = services(request)
    store_ok, store_error = await _store_status(request)
    if svc.executor.inflight.closing:
        return JSONResponse({"status": "draining"}, status_code=503)
    if not store_ok:
        return JSONResponse({"status": "unavailable", "store": store_error}, status_code=503)
    return JSONResponse({"status": "ok"})


@router.get("/health/startup", summary="Startup: initialisation finished")
async def startup(request: Request) -> JSONResponse:
    if not services(request).started:
        return JSONResponse({"status": "starting"}, status_code=503)
    return JSONResponse({"status": "ok"})


async def _store_status(request: Request) -> tuple[bool, str | None]:
    try:
        await services(request).store.ping()
    except NovaError as exc:
        return False, exc.message
    return True, None
