"""API keys (F12): /keys. A key is shown once, in the answer that created it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

from nova.api.audit_trail import TARGET
from nova.api.bodies import read_json_model
from nova.api.openapi import json_body
from nova.api.routes.functions import services
from nova.api.tenancy import chosen_environment, sees_key
from nova.auth.service import KeyService
from nova.core.auth import ApiKey, KeyNotFound
from nova.store import cursors

router = APIRouter(tags=["keys"])


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="unique, ^[a-z][a-z0-9-]{0,62}$")
    role: str = Field("developer", description="admin, developer, invoker or viewer")
    scope: str = Field("*", description="'*' or comma-separated function-name patterns")
    expires_in_s: float | None = Field(None, description="lifetime in seconds; none: no expiry")
    environment: str | None = Field(
        None,
        description="org/project/env the key acts in, or '*' for every environment; default: "
        "the environment the request acts in when it names one (X-Nova-Environment, or the "
        "creating key's own), else every environment",
    )


def keys_of(request: Request) -> KeyService:
    return services(request).keys


def key_out(request: Request, key: ApiKey) -> dict[str, Any]:
    verifier = services(request).verifier
    last_used = verifier.last_used_at(key) if verifier is not None else key.last_used_at
    return {
        "id": key.id,
        "name": key.name,
        "role": key.role.value,
        "scope": ",".join(key.scope),
        "enabled": key.enabled,
        "created_at": key.created_at.isoformat(),
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        "last_used_at": last_used.isoformat() if last_used else None,
        "environment": key.environment.path if key.environment is not None else "*",
    }


async def visible_key(request: Request, name: str) -> str:
    """``name`` if the request may see that key: a key bound to an environment sees only the
    keys of its environment (another's answers 404, like one that does not exist)."""
    key = await keys_of(request).get(name)
    if not sees_key(request.scope, key):
        raise KeyNotFound(name)
    return name


@router.post(
    "/keys",
    summary="Create an API key; the answer holds the key, shown this once",
    response_model=None,
    openapi_extra=json_body(KeyCreate),
)
async def create_key(request: Request) -> JSONResponse:
    body = await read_json_model(request, KeyCreate)
    request.scope[TARGET] = body.name  # the audit log's target (the path does not name it)
    environment = chosen_environment(request.scope, body.environment)
    created = await keys_of(request).create(
        body.name, body.role, body.scope, body.expires_in_s, environment
    )
    shown_once = {
        "key": created.token,
        # The same key for AWS SDKs (SigV4 on the Lambda API paths).
        "access_key_id": created.key.id,
        "secret_access_key": created.secret,
    }
    return JSONResponse({**key_out(request, created.key), **shown_once}, status_code=201)


@router.get("/keys", summary="List API keys (never the keys themselves)")
async def list_keys(
    request: Request, limit: int = Query(100, ge=1, le=1000), cursor: str | None = None
) -> dict[str, Any]:
    after = cursors.decode(cursor, cursors.KEYS, 1)[0] if cursor else ""
    keys = [
        key
        for key in await keys_of(request).list()
        if key.name > after and sees_key(request.scope, key)
    ]
    page = keys[:limit]
    more = len(keys) > limit
    return {
        "items": [key_out(request, key) for key in page],
        "next": cursors.encode(cursors.KEYS, page[-1].name) if more else None,
    }


@router.get("/keys/{name}", summary="One API key")
async def get_key(request: Request, name: str) -> dict[str, Any]:
    return key_out(request, await keys_of(request).get(await visible_key(request, name)))


@router.delete("/keys/{name}", summary="Delete an API key (requests with it fail at once)")
async def delete_key(request: Request, name: str) -> dict[str, Any]:
    return key_out(request, await keys_of(request).delete(await visible_key(request, name)))


@router.post("/keys/{name}/disable", summary="Disable an API key (it can be enabled again)")
async def disable_key(request: Request, name: str) -> dict[str, Any]:
    return key_out(request, await keys_of(request).disable(await visible_key(request, name)))


@router.post("/keys/{name}/enable", summary="Enable a disabled API key")
async def enable_key(request: Request, name: str) -> dict[str, Any]:
    return key_out(request, await keys_of(request).enable(await visible_key(request, name)))
