"""Secrets (F11): /secrets and the master-key rotation. Values go in, never out."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

from nova.api.bodies import parse_model, read_body
from nova.api.openapi import json_body
from nova.api.routes.functions import services
from nova.api.tenancy import environment
from nova.core.secrets import MAX_SECRET_BYTES, SecretInfo, validate_secret_name
from nova.core.tenancy import secret_environment
from nova.secrets.service import SecretService

router = APIRouter(tags=["secrets"])
_BODY_LIMIT = 4 * MAX_SECRET_BYTES  # the value JSON-escaped, with room to spare


class SecretPut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: str = Field(description="the secret's value; it is never shown again")


class MasterKeyRotate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    new_key: str | None = Field(
        None,
        description="base64 of 32 bytes; required when the key comes from NOVA_MASTER_KEY, "
        "else one is generated",
    )


def secrets_of(request: Request) -> SecretService:
    return services(request).secrets


def stored_name(request: Request, name: str) -> str:
    """The store's name of the request's environment's secret ``name``."""
    return environment(request.scope).secret_name(validate_secret_name(name))


def secret_out(info: SecretInfo) -> dict[str, Any]:
    return {
        "name": secret_environment(info.name)[1],
        "created_at": info.created_at.isoformat(),
        "updated_at": info.updated_at.isoformat(),
    }


@router.put(
    "/secrets/{name}",
    summary="Set a secret (201 created, 200 replaced); the value is never returned",
    response_model=None,
    openapi_extra=json_body(SecretPut),
)
async def put_secret(request: Request, name: str) -> JSONResponse:
    body = parse_model(SecretPut, await read_body(request, _BODY_LIMIT, "the secret"))
    info, created = await secrets_of(request).set(stored_name(request, name), body.value)
    return JSONResponse(secret_out(info), status_code=201 if created else 200)


@router.get("/secrets", summary="List secrets: names and dates, never values")
async def list_secrets(
    request: Request, limit: int = Query(100, ge=1, le=1000), cursor: str | None = None
) -> dict[str, Any]:
    page = await secrets_of(request).list(environment(request.scope), limit=limit, cursor=cursor)
    return {"items": [secret_out(info) for info in page.items], "next": page.next}


@router.delete("/secrets/{name}", summary="Delete a secret")
async def delete_secret(request: Request, name: str) -> dict[str, Any]:
    info = await secrets_of(request).delete(stored_name(request, name))
    return secret_out(info)


@router.post(
    "/admin/master-key/rotate",
    summary="Re-encrypt every secret under a new master key, in one transaction",
    openapi_extra=json_body(MasterKeyRotate, required=False),
)
async def rotate_master_key(request: Request) -> dict[str, Any]:
    raw = await read_body(request, 4096, "the rotation")
    body = parse_model(MasterKeyRotate, raw) if raw.strip() else MasterKeyRotate()
    rotation = await secrets_of(request).rotate(body.new_key)
    return {"key_id": rotation.key_id, "secrets": rotation.secrets}
