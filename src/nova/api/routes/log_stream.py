"""GET /invocations/stream: invocation records as Server-Sent Events, as they are stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Literal

import orjson
from fastapi import APIRouter, Query, Request
from starlette.responses import StreamingResponse

from nova.api.routes.functions import services
from nova.api.routes.observe import log_out
from nova.api.tenancy import environment, full_name
from nova.observability.log_follow import LogFilter, LogFollower

router = APIRouter(tags=["observe"])

POLL_S = 0.5  # records are written in batches every executor.log_flush_interval_ms (500) anyway


@router.get(
    "/invocations/stream",
    summary="Invocation records as they are stored (text/event-stream: one `data:` line each)",
    response_class=StreamingResponse,
)
async def stream(
    request: Request,
    function: str | None = Query(None, description="every function that had this name"),
    outcome: Literal["success", "error", "timeout"] | None = Query(
        None, description="error: any failure; timeout: only timeouts"
    ),
    version: str | None = Query(None, description="only this version ($LATEST, 1, 2, ...)"),
    since: datetime | None = Query(
        None, description="also the latest records created since then (ISO 8601, with a zone)"
    ),
) -> StreamingResponse:
    svc = services(request)
    name = full_name(request, function) if function is not None else None
    here = environment(request.scope)
    selection = LogFilter(outcome, version, since)
    follower = LogFollower(
        svc.store.invocations, name, selection, POLL_S, lambda: svc.executor.inflight.closing
    )
    await follower.start()  # before the answer: a record stored after it arrives is sent

    async def events() -> AsyncIterator[bytes]:
        yield b": following\n\n"
        async for log in follower.records():
            if not here.holds(log.function_name):
                continue  # another environment's
            yield b"data: " + orjson.dumps(log_out(log)) + b"\n\n"

    # Ends when the daemon drains (so an open stream never holds up a shutdown) or the client
    # goes away (Starlette cancels the generator).
    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )
