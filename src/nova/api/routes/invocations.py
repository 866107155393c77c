"""Asynchronous invocations: /invocations/{id} and the dead letters (/dead-letters…)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from nova.api.bodies import read_json_model
from nova.api.openapi import json_body
from nova.api.routes.functions import services
from nova.core.errors import RequestInvalid
from nova.core.events import AsyncEvent, EventFilter, EventStatus
from nova.core.names import validate_function_name
from nova.events.invocations import AsyncInvocations

router = APIRouter(tags=["asynchronous invocations"])


class DeadLetterSelection(BaseModel):
    """Which dead letters to replay or purge: ``ids``, or a filter (``function`` and/or
    ``error_type``, the last attempt's), or ``all: true``. An empty selection is refused, so a
    forgotten filter never touches every dead letter."""

    model_config = ConfigDict(extra="forbid")

    ids: list[str] = Field(default_factory=list, max_length=1000)
    function: str | None = None
    error_type: str | None = None
    all: bool = False

    def to_filter(self) -> EventFilter:
        if not (self.ids or self.function or self.error_type or self.all):
            raise RequestInvalid(
                "selection: give ids, a filter (function, error_type) or all: true"
            )
        if self.all and (self.ids or self.function or self.error_type):
            raise RequestInvalid("all: true selects every dead letter; give no ids or filter")
        if self.function is not None:
            validate_function_name(self.function)
        return EventFilter(tuple(self.ids), self.function, self.error_type)


def invocations(request: Request) -> AsyncInvocations:
    return services(request).invocations


def event_out(event: AsyncEvent) -> dict[str, Any]:
    """An event as the API shows it; ``result`` is the last attempt's invoke response."""
    return {
        "request_id": event.id,
        "function": event.function,
        "qualifier": event.qualifier or None,
        "status": event.status.value,
        "attempts": event.attempts,
        "source": event.source,
        "idempotency_key": event.idempotency_key,
        "created_at": event.created_at.isoformat(),
        "updated_at": event.updated_at.isoformat(),
        "finished_at": event.finished_at.isoformat() if event.finished_at else None,
        "next_attempt_at": (
            event.available_at.isoformat() if event.status is EventStatus.PENDING else None
        ),
        "payload": orjson.Fragment(event.payload),
        "result": orjson.Fragment(event.result) if event.result is not None else None,
        "errors": [error.document() for error in event.errors],
    }


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


@router.get(
    "/invocations/{request_id}",
    summary="An asynchronous invocation: status, attempts, result and every attempt's error",
)
async def get_invocation(request: Request, request_id: str) -> Response:
    return _json(event_out(await invocations(request).get(request_id)))


@router.get("/dead-letters", summary="Events whose every attempt failed, newest first")
async def list_dead_letters(
    request: Request,
    function: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
    cursor: str | None = None,
) -> Response:
    if function is not None:
        validate_function_name(function)
    page = await invocations(request).dead_letters(function, limit, cursor)
    return _json({"items": [event_out(event) for event in page.items], "next": page.next})


@router.post(
    "/dead-letters/replay",
    summary="Run dead letters again, from a fresh attempt count",
    openapi_extra=json_body(DeadLetterSelection),
)
async def replay_dead_letters(request: Request) -> dict[str, int]:
    selection = await read_json_model(request, DeadLetterSelection)
    return {"replayed": await invocations(request).replay(selection.to_filter())}


@router.post(
    "/dead-letters/purge",
    summary="Delete dead letters",
    openapi_extra=json_body(DeadLetterSelection),
)
async def purge_dead_letters(request: Request) -> dict[str, int]:
    selection = await read_json_model(request, DeadLetterSelection)
    return {"purged": await invocations(request).purge(selection.to_filter())}
