"""Versions and aliases: /functions/{name}/versions[/{n}], /functions/{name}/aliases[/{alias}]."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import JSONResponse

from nova.api.bodies import parse_model, read_json_model
from nova.api.openapi import json_body
from nova.api.release_bodies import (
    AliasPut,
    VersionPublish,
    alias_out,
    change_out,
    version_out,
)
from nova.api.routes.functions import services
from nova.api.tenancy import FunctionName
from nova.functions.releases import ReleaseService

router = APIRouter(tags=["versions and aliases"])
Number = Path(ge=1, le=999_999_999, description="a version number")


def releases(request: Request) -> ReleaseService:
    return services(request).releases


@router.post(
    "/functions/{name}/versions",
    summary="Publish $LATEST as a new immutable version (201), or return the newest (200)",
    response_model=None,
    openapi_extra=json_body(VersionPublish, required=False),
)
async def publish(request: Request, name: FunctionName) -> JSONResponse:
    raw = await request.body()
    body = parse_model(VersionPublish, raw) if raw.strip() else VersionPublish()
    version, created = await releases(request).publish(name, body.description)
    return JSONResponse(version_out(version), status_code=201 if created else 200)


@router.get("/functions/{name}/versions", summary="List published versions")
async def list_versions(
    request: Request,
    name: FunctionName,
    limit: int = Query(100, ge=1, le=1000),
    cursor: str | None = None,
) -> dict[str, Any]:
    page = await releases(request).versions(name, limit, cursor)
    return {"items": [version_out(v) for v in page.items], "next": page.next}


@router.get("/functions/{name}/versions/{number}", summary="One published version")
async def get_version(request: Request, name: FunctionName, number: int = Number) -> dict[str, Any]:
    return version_out(await releases(request).version(name, number))


@router.delete(
    "/functions/{name}/versions/{number}",
    summary="Delete a version (409 Version.InUse while an alias routes to it)",
)
async def delete_version(
    request: Request, name: FunctionName, number: int = Number
) -> dict[str, Any]:
    deleted = await releases(request).delete_version(name, number)
    return {**version_out(deleted), "deleted": True}


@router.put(
    "/functions/{name}/aliases/{alias}",
    summary="Create or replace an alias: one version, or two weighted, and a canary policy",
    openapi_extra=json_body(AliasPut),
)
async def put_alias(request: Request, name: FunctionName, alias: str) -> dict[str, Any]:
    body = await read_json_model(request, AliasPut)
    record = await releases(request).set_alias(
        name,
        alias,
        body.routing(),
        body.description,
        body.canary.policy() if body.canary is not None else None,
    )
    return alias_out(record)


@router.get("/functions/{name}/aliases", summary="List the function's aliases")
async def list_aliases(request: Request, name: FunctionName) -> dict[str, Any]:
    return {"items": [alias_out(a) for a in await releases(request).aliases(name)], "next": None}


@router.get(
    "/functions/{name}/aliases/{alias}",
    summary="One alias, with its canary policy and the last analysis",
)
async def get_alias(request: Request, name: FunctionName, alias: str) -> dict[str, Any]:
    return alias_out(await releases(request).alias(name, alias))


@router.delete("/functions/{name}/aliases/{alias}", summary="Delete an alias")
async def delete_alias(request: Request, name: FunctionName, alias: str) -> dict[str, Any]:
    return {**alias_out(await releases(request).delete_alias(name, alias)), "deleted": True}


@router.post(
    "/functions/{name}/aliases/{alias}/rollback",
    summary="Restore the alias's previous routing",
)
async def rollback_alias(request: Request, name: FunctionName, alias: str) -> dict[str, Any]:
    return alias_out(await releases(request).rollback(name, alias))


@router.get(
    "/functions/{name}/aliases/{alias}/history",
    summary="The alias's routing changes, newest first: when, from, to, why",
)
async def alias_history(
    request: Request, name: FunctionName, alias: str, limit: int = Query(50, ge=1, le=1000)
) -> dict[str, Any]:
    changes = await releases(request).history(name, alias, limit)
    return {"items": [change_out(change) for change in changes], "next": None}
