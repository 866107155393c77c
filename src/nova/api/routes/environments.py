"""Environments and their quotas: /environments[/{org}/{project}/{env}[/quotas]].

Reading is for any key that may read functions, within what it may see: a key bound to one
environment sees only that one. Creating, changing quotas and deleting are for an admin key of
every environment: quotas are the operator's limits on a tenant, not the tenant's to lift.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, RootModel
from starlette.responses import JSONResponse

from nova.api.audit_trail import TARGET
from nova.api.bodies import parse_model, read_body, read_json_model
from nova.api.openapi import json_body
from nova.api.routes.functions import services
from nova.api.tenancy import acts_everywhere, environment
from nova.core.auth import OutOfScope
from nova.core.tenancy import Environment, EnvironmentNotFound
from nova.environments.registry import EnvironmentRegistry
from nova.store.environments import quotas_document
from nova.store.tenancy_ports import EnvironmentRecord

router = APIRouter(tags=["environments"])
_PATH = "/environments/{organisation}/{project}/{name}"
_BODY_LIMIT = 64 * 1024


class EnvironmentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    environment: str = Field(description="organisation/project/environment")
    quotas: dict[str, float | None] = Field(
        default_factory=dict,
        description="max_functions, max_memory_mb, max_code_bytes, max_concurrency, "
        "log_retention_days (absent or null: no limit)",
    )


class QuotaChanges(RootModel[dict[str, float | None]]):
    """{quota: limit}: only the quotas named change; null lifts one."""


def registry(request: Request) -> EnvironmentRegistry:
    return services(request).environments


def environment_out(record: EnvironmentRecord) -> dict[str, Any]:
    return {
        "environment": record.environment.path,
        "quotas": quotas_document(record.quotas),
        "created_at": record.created_at.isoformat(),
    }


def _visible(request: Request, organisation: str, project: str, name: str) -> Environment:
    """The environment the path names, if the request may see it (else 404)."""
    named = Environment(organisation, project, name)
    if not acts_everywhere(request.scope) and named != environment(request.scope):
        raise EnvironmentNotFound(named.path)
    return named


def _operator_only(request: Request) -> None:
    """Creating, changing quotas and deleting need a key of every environment."""
    if not acts_everywhere(request.scope):
        raise OutOfScope()


@router.get("/environments", summary="Environments and their quotas (a bound key: its own)")
async def list_environments(request: Request) -> dict[str, Any]:
    records = await registry(request).list()
    if not acts_everywhere(request.scope):
        own = environment(request.scope)
        records = [record for record in records if record.environment == own]
    return {"items": [environment_out(record) for record in records], "next": None}


@router.post(
    "/environments",
    status_code=201,
    summary="Create an environment, with quotas",
    response_model=None,
    openapi_extra=json_body(EnvironmentCreate),
)
async def create_environment(request: Request) -> JSONResponse:
    _operator_only(request)
    body = await read_json_model(request, EnvironmentCreate)
    request.scope[TARGET] = body.environment  # the audit log's target
    record = await registry(request).create(body.environment, body.quotas)
    return JSONResponse(environment_out(record), status_code=201)


@router.get(_PATH, summary="One environment, its quotas and what it uses of them")
async def get_environment(
    request: Request, organisation: str, project: str, name: str
) -> dict[str, Any]:
    named = _visible(request, organisation, project, name)
    record = await registry(request).get(named)
    functions, code_bytes = await services(request).store.functions.usage(named)
    usage = {
        "functions": functions,
        "code_bytes": code_bytes,
        # Concurrency is held per daemon, so this daemon's count is the one its quota meets.
        "running": services(request).environment_concurrency.running(named),
    }
    return {**environment_out(record), "usage": usage}


@router.patch(
    _PATH + "/quotas",
    summary="Set quotas (null lifts one; the others are kept)",
    openapi_extra=json_body(QuotaChanges),
)
async def set_quotas(
    request: Request, organisation: str, project: str, name: str
) -> dict[str, Any]:
    named = _visible(request, organisation, project, name)
    _operator_only(request)
    changes = parse_model(QuotaChanges, await read_body(request, _BODY_LIMIT, "the quotas"))
    return environment_out(await registry(request).set_quotas(named, changes.root))


@router.delete(_PATH, summary="Delete an empty environment")
async def delete_environment(
    request: Request, organisation: str, project: str, name: str
) -> dict[str, Any]:
    named = _visible(request, organisation, project, name)
    _operator_only(request)
    return {**environment_out(await registry(request).delete(named)), "deleted": True}
