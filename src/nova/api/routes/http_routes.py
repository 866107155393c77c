"""Custom HTTP routes (/routes) and function URL settings (/functions/{name}/url)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

from nova.api.bodies import read_json_model
from nova.api.http_trigger import URL_PREFIX
from nova.api.openapi import json_body
from nova.api.routes.functions import services
from nova.api.tenancy import full_name, full_reference, here
from nova.core.tenancy import short_name
from nova.core.triggers import FunctionUrlConfig, Route, RouteNotFound, SignatureCheck, TriggerAuth
from nova.http_triggers.service import RouteService, SignatureInput

router = APIRouter(tags=["http triggers"])
_UNDOCUMENTED = {URL_PREFIX.strip("/"), "docs", "redoc", "openapi.json", "console", "ui"}


class SignatureBody(BaseModel):
    """A webhook HMAC-SHA256 check: ``secret`` in clear (sealed as a secret of its own) or
    ``$SECRET:name``."""

    model_config = ConfigDict(extra="forbid")

    secret: str = Field(min_length=1, max_length=4096)
    header: str = Field("x-signature-256", max_length=128)
    algorithm: str = "sha256"
    timestamp_header: str | None = Field(None, max_length=128)
    tolerance_s: int = 300

    def to_input(self) -> SignatureInput:
        return SignatureInput(
            self.secret, self.header, self.algorithm, self.timestamp_header, self.tolerance_s
        )


class RouteCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: str = Field("ANY", description="GET, POST, ... or ANY")
    path_prefix: str = Field(description="e.g. /hooks/github; the longest matching prefix wins")
    function: str = Field(description="name or name:qualifier")
    auth: TriggerAuth = TriggerAuth.PLATFORM
    signature: SignatureBody | None = None


class FunctionUrlPut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    auth: TriggerAuth = TriggerAuth.PLATFORM
    signature: SignatureBody | None = None


def routes_of(request: Request) -> RouteService:
    return services(request).http_routes


def reserved_segments(request: Request) -> set[str]:
    """The first path segments of Nova's own API (from its OpenAPI document, built once, and
    the pages outside it): no custom route may shadow them."""
    paths: dict[str, Any] = request.app.openapi()["paths"]
    return {path.split("/")[1] for path in paths} | _UNDOCUMENTED


def _signature_out(signature: SignatureCheck | None) -> dict[str, object] | None:
    return None if signature is None else signature.document()


def route_out(route: Route) -> dict[str, Any]:
    spec = route.spec
    return {
        "id": route.id,
        "method": route.method,
        "path_prefix": route.path_prefix,
        "function": short_name(spec.function),
        "qualifier": spec.qualifier or None,
        "auth": spec.auth.value,
        "signature": _signature_out(spec.signature),
        "created_at": route.created_at.isoformat(),
    }


def url_out(config: FunctionUrlConfig) -> dict[str, Any]:
    return {
        "function": short_name(config.function),
        "url": f"{URL_PREFIX}{config.function}/",
        "auth": config.auth.value,
        "signature": _signature_out(config.signature),
    }


@router.post(
    "/routes",
    status_code=201,
    summary="Add a custom route: method + path prefix -> function[:qualifier]",
    openapi_extra=json_body(RouteCreate),
)
async def add_route(request: Request) -> JSONResponse:
    body = await read_json_model(request, RouteCreate)
    route = await routes_of(request).add(
        body.method,
        body.path_prefix,
        full_reference(request, body.function),
        reserved=reserved_segments(request),
        auth=body.auth,
        signature=body.signature.to_input() if body.signature else None,
    )
    return JSONResponse(route_out(route), status_code=201)


@router.get("/routes", summary="Every custom route, by path prefix")
async def list_routes(request: Request) -> dict[str, Any]:
    routes = [r for r in await routes_of(request).list() if here(request, r.spec.function)]
    return {"items": [route_out(r) for r in routes], "next": None}


@router.delete("/routes/{route_id}", summary="Delete a custom route (and its generated secret)")
async def delete_route(request: Request, route_id: str) -> dict[str, Any]:
    service = routes_of(request)
    if not any(r.id == route_id and here(request, r.spec.function) for r in await service.list()):
        raise RouteNotFound(route_id)
    return route_out(await service.delete(route_id))


@router.get("/functions/{name}/url", summary="The function's URL and what it requires")
async def get_function_url(request: Request, name: str) -> dict[str, Any]:
    name = full_name(request, name)
    await services(request).functions.get(name)  # Function.NotFound for an unknown name
    return url_out(routes_of(request).url_config(name))


@router.put(
    "/functions/{name}/url",
    summary="Set what the function's URL requires: auth, a webhook signature",
    openapi_extra=json_body(FunctionUrlPut),
)
async def put_function_url(request: Request, name: str) -> dict[str, Any]:
    body = await read_json_model(request, FunctionUrlPut)
    signature = body.signature.to_input() if body.signature else None
    return url_out(await routes_of(request).set_url(full_name(request, name), body.auth, signature))
