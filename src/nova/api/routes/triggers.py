"""Queue triggers: /triggers (create, list), /triggers/{name} (show, delete), pause, resume."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict

from nova.api.bodies import read_json_model
from nova.api.openapi import json_body
from nova.api.routes.functions import services
from nova.api.tenancy import full_reference, here
from nova.core.errors import RequestInvalid
from nova.core.queue_triggers import QueueTrigger, TriggerNotFound, TriggerSource
from nova.core.tenancy import short_name
from nova.triggers.consumer import TriggerConsumer
from nova.triggers.service import TriggerService, TriggerSpec

router = APIRouter(tags=["queue triggers"])


class TriggerBody(BaseModel):
    """A trigger: ``function`` is ``name`` or ``name:qualifier``; exactly the one of
    ``subject`` (nats), ``queue`` (rabbitmq) or ``stream`` (redis) that its source reads;
    ``url`` overrides the daemon's ``triggers.<source>_url``."""

    model_config = ConfigDict(extra="forbid")

    name: str
    function: str
    source: str
    subject: str | None = None
    queue: str | None = None
    stream: str | None = None
    url: str = ""
    batch_size: int = 10
    concurrency: int = 1
    enabled: bool = True

    def to_spec(self) -> TriggerSpec:
        given = {
            key: value
            for key, value in (
                ("subject", self.subject),
                ("queue", self.queue),
                ("stream", self.stream),
            )
            if value is not None
        }
        try:
            field = TriggerSource(self.source).target_field
        except ValueError:
            field = ""  # the service names the bad source
        wrong = sorted(set(given) - {field})
        if field and wrong:
            raise RequestInvalid(
                f"{wrong[0]}: a {self.source} trigger reads a {field}; give {field} only"
            )
        if field and field not in given:
            raise RequestInvalid(f"{field}: a {self.source} trigger needs the {field} to read")
        return TriggerSpec(
            name=self.name,
            function=self.function,
            source=self.source,
            target=given.get(field, ""),
            url=self.url,
            batch_size=self.batch_size,
            concurrency=self.concurrency,
            enabled=self.enabled,
        )


def triggers(request: Request) -> TriggerService:
    return services(request).triggers


def trigger_out(service: TriggerService, trigger: QueueTrigger) -> dict[str, Any]:
    """A trigger as the API shows it (a URL never with its password), with ``consumer``: this
    daemon's consumer of it (None while paused)."""
    consumer = service.manager.consumer(trigger.name)
    return {
        "name": trigger.name,
        "function": short_name(trigger.reference),
        "source": trigger.source.value,
        trigger.source.target_field: trigger.target,
        "url": redact_url(trigger.url) or None,
        "batch_size": trigger.batch_size,
        "concurrency": trigger.concurrency,
        "enabled": trigger.enabled,
        "created_at": trigger.created_at.isoformat(),
        "updated_at": trigger.updated_at.isoformat(),
        "consumer": consumer_out(consumer) if consumer is not None else None,
    }


def consumer_out(consumer: TriggerConsumer) -> dict[str, Any]:
    stats = consumer.stats
    return {
        "state": consumer.state.value,
        "last_error": consumer.last_error,
        "received": stats.received,
        "acked": stats.acked,
        "failed": stats.failed,
        "dead_lettered": stats.dead_lettered,
        "reconnects": stats.reconnects,
        "lag": stats.lag,
    }


def redact_url(url: str) -> str:
    return re.sub(r"(//[^:/@]*:)[^@/]*@", r"\1***@", url)


@router.post(
    "/triggers",
    status_code=201,
    summary="Add a queue trigger: run a function for every message of a NATS subject, "
    "RabbitMQ queue or Redis stream",
    openapi_extra=json_body(TriggerBody),
)
async def create_trigger(request: Request) -> dict[str, Any]:
    body = await read_json_model(request, TriggerBody)
    service = triggers(request)
    spec = body.to_spec()
    spec = dataclasses.replace(spec, function=full_reference(request, spec.function))
    return trigger_out(service, await service.create(spec))


@router.get("/triggers", summary="Queue triggers by name, with this daemon's consumers")
async def list_triggers(
    request: Request, limit: int = Query(100, ge=1, le=1000), cursor: str | None = None
) -> dict[str, Any]:
    service = triggers(request)
    page = await service.list(limit, cursor)
    items = [trigger_out(service, t) for t in page.items if here(request, t.function)]
    return {"items": items, "next": page.next}


async def visible_trigger(request: Request, name: str) -> str:
    """``name`` if the trigger's function is in the request's environment (else 404)."""
    if not here(request, (await triggers(request).get(name)).function):
        raise TriggerNotFound(name)
    return name


@router.get("/triggers/{name}", summary="One queue trigger and this daemon's consumer of it")
async def get_trigger(request: Request, name: str) -> dict[str, Any]:
    service = triggers(request)
    return trigger_out(service, await service.get(await visible_trigger(request, name)))


@router.delete("/triggers/{name}", summary="Delete a queue trigger (its consumers stop)")
async def delete_trigger(request: Request, name: str) -> dict[str, Any]:
    service = triggers(request)
    return trigger_out(service, await service.delete(await visible_trigger(request, name)))


@router.post("/triggers/{name}/pause", summary="Stop consuming (messages wait in the broker)")
async def pause_trigger(request: Request, name: str) -> dict[str, Any]:
    service = triggers(request)
    return trigger_out(
        service, await service.set_enabled(await visible_trigger(request, name), False)
    )


@router.post("/triggers/{name}/resume", summary="Consume again")
async def resume_trigger(request: Request, name: str) -> dict[str, Any]:
    service = triggers(request)
    return trigger_out(
        service, await service.set_enabled(await visible_trigger(request, name), True)
    )
