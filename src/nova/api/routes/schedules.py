"""Schedules (/schedules): run a function's event on a cron expression or an interval."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from nova.api.bodies import read_json_model
from nova.api.openapi import json_body
from nova.api.routes.functions import services
from nova.api.tenancy import full_name, here
from nova.core.names import split_reference
from nova.core.tenancy import short_name
from nova.core.triggers import CatchUp, Schedule, ScheduleNotFound
from nova.schedules.service import ScheduleChanges, ScheduleService

router = APIRouter(tags=["schedules"])


class ScheduleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    function: str = Field(description="name or name:qualifier")
    expression: str = Field(
        max_length=256, description="'@every 30s', '@hourly', '@daily', or 5 cron fields"
    )
    timezone: str = Field("UTC", max_length=64, description="IANA name the cron fields use")
    payload: Any = Field(default_factory=dict, description="the event's detail (any JSON)")
    catch_up: CatchUp = CatchUp.LATEST
    enabled: bool = True


class SchedulePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    qualifier: str | None = Field(None, description="'' for $LATEST")
    expression: str | None = Field(None, max_length=256)
    timezone: str | None = Field(None, max_length=64)
    payload: Any = None
    catch_up: CatchUp | None = None
    enabled: bool | None = None


def schedules_of(request: Request) -> ScheduleService:
    return services(request).schedules


def schedule_out(schedule: Schedule) -> dict[str, Any]:
    return {
        "id": schedule.id,
        "function": short_name(schedule.function),
        "qualifier": schedule.qualifier or None,
        "expression": schedule.expression,
        "timezone": schedule.timezone,
        "payload": orjson.Fragment(schedule.payload),
        "catch_up": schedule.catch_up.value,
        "enabled": schedule.enabled,
        "next_run_at": schedule.next_run_at.isoformat() if schedule.enabled else None,
        "last_run_at": schedule.last_run_at.isoformat() if schedule.last_run_at else None,
        "created_at": schedule.created_at.isoformat(),
        "updated_at": schedule.updated_at.isoformat(),
    }


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


@router.post(
    "/schedules",
    status_code=201,
    summary="Add a schedule: the function's event on every tick, through the async queue",
    openapi_extra=json_body(ScheduleCreate),
)
async def add_schedule(request: Request) -> Response:
    body = await read_json_model(request, ScheduleCreate)
    name, qualifier = split_reference(body.function)
    name = full_name(request, name)
    schedule = await schedules_of(request).add(
        name,
        body.expression,
        qualifier=qualifier or "",
        timezone=body.timezone,
        payload=orjson.dumps(body.payload),
        catch_up=body.catch_up,
        enabled=body.enabled,
    )
    return _json(schedule_out(schedule), 201)


@router.get("/schedules", summary="Schedules, by id")
async def list_schedules(
    request: Request,
    function: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
    cursor: str | None = None,
) -> Response:
    named = full_name(request, function) if function is not None else None
    page = await schedules_of(request).list(named, limit, cursor)
    items = [schedule_out(s) for s in page.items if here(request, s.function)]
    return _json({"items": items, "next": page.next})


async def visible_schedule(request: Request, schedule_id: str) -> str:
    """``schedule_id`` if its function is in the request's environment (else 404)."""
    if not here(request, (await schedules_of(request).get(schedule_id)).function):
        raise ScheduleNotFound(schedule_id)
    return schedule_id


@router.get("/schedules/{schedule_id}", summary="One schedule")
async def get_schedule(request: Request, schedule_id: str) -> Response:
    return _json(
        schedule_out(await schedules_of(request).get(await visible_schedule(request, schedule_id)))
    )


@router.patch(
    "/schedules/{schedule_id}",
    summary="Change a schedule; enabled: false pauses it, true resumes it from now",
    openapi_extra=json_body(SchedulePatch),
)
async def patch_schedule(request: Request, schedule_id: str) -> Response:
    body = await read_json_model(request, SchedulePatch)
    given = body.model_fields_set
    changes = ScheduleChanges(
        qualifier=body.qualifier,
        expression=body.expression,
        timezone=body.timezone,
        payload=orjson.dumps(body.payload) if "payload" in given else None,
        catch_up=body.catch_up,
        enabled=body.enabled,
    )
    await visible_schedule(request, schedule_id)
    return _json(schedule_out(await schedules_of(request).update(schedule_id, changes)))


@router.delete("/schedules/{schedule_id}", summary="Delete a schedule")
async def delete_schedule(request: Request, schedule_id: str) -> Response:
    await visible_schedule(request, schedule_id)
    return _json(schedule_out(await schedules_of(request).delete(schedule_id)))
