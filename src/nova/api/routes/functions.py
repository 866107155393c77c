"""Function CRUD (F2): /functions, /functions/{name}, /functions/{name}/code."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import APIRouter, Query, Request

from nova.api.audit_trail import TARGET
from nova.api.auth_gate import sees
from nova.api.bodies import (
    CODE_LIMIT,
    is_multipart,
    read_body,
    read_json_model,
    read_multipart,
)
from nova.api.context import Services
from nova.api.openapi import ZIP_BODY, function_body
from nova.api.schemas import FunctionCreate, FunctionFields, FunctionPatch, function_out
from nova.api.tenancy import environment, full_name
from nova.core.auth import OutOfScope
from nova.core.errors import RequestInvalid
from nova.core.tenancy import short_name
from nova.functions.service import CodeSource

router = APIRouter(tags=["functions"])
Body = TypeVar("Body", bound=FunctionFields)


def services(request: Request) -> Services:
    result: Services = request.app.state.services
    return result


async def read_function_body(request: Request, model: type[Body]) -> tuple[Body, CodeSource]:
    """The fields and the code of a create or update: JSON, or multipart `meta` + `zip`."""
    limit = services(request).settings.code.max_upload_bytes
    archive = None
    if is_multipart(request):
        body, archive = await read_multipart(request, model, limit)
    else:
        body = await read_json_model(request, model, limit, CODE_LIMIT)
    # A meta with code too is two sources: the service refuses it rather than pick one.
    return body, CodeSource(body.code, body.files, body.code_path, archive)


@router.post(
    "/functions",
    status_code=201,
    summary="Create a function (JSON, or multipart meta + zip)",
    openapi_extra=function_body(FunctionCreate),
)
async def create_function(request: Request) -> dict[str, Any]:
    body, source = await read_function_body(request, FunctionCreate)
    request.scope[TARGET] = body.name  # the audit log's target (the path does not name it)
    if not sees(request.scope, body.name):
        raise OutOfScope()
    fields = {**body.config_fields(), "name": full_name(request, body.name)}
    functions = services(request).functions
    record = await functions.create(fields, source)
    return function_out(record, await functions.compile_state(record))


@router.get("/functions", summary="List functions")
async def list_functions(
    request: Request, limit: int = Query(100, ge=1, le=1000), cursor: str | None = None
) -> dict[str, Any]:
    functions = services(request).functions
    page = await functions.list(limit, cursor, environment(request.scope))
    items = [
        function_out(record, await functions.compile_state(record))
        for record in page.items
        if sees(request.scope, short_name(record.name))
    ]
    return {"items": items, "next": page.next}


@router.get("/functions/{name}", summary="Get a function")
async def get_function(request: Request, name: str) -> dict[str, Any]:
    functions = services(request).functions
    record = await functions.get(full_name(request, name))
    return function_out(record, await functions.compile_state(record))


@router.get(
    "/functions/{name}/build-log",
    summary="The build of the function's code: a compiled language's compilation (status "
    "pending, compiling, success, failed; the compiler's output), else its dependency "
    "installation (status none, missing, success, failed; the installer's log)",
)
async def function_build_log(request: Request, name: str) -> dict[str, Any]:
    build = await services(request).functions.build_log(full_name(request, name))
    return {"status": build.status, "key": build.key, "log": build.log}


@router.patch(
    "/functions/{name}",
    summary="Update a function's config and/or code",
    openapi_extra=function_body(FunctionPatch),
)
async def update_function(request: Request, name: str) -> dict[str, Any]:
    name = full_name(request, name)
    body, source = await read_function_body(request, FunctionPatch)
    changes = body.config_fields()
    if body.name is not None:
        changes["name"] = full_name(request, body.name)
    functions = services(request).functions
    record = await functions.update(name, changes, source)
    return function_out(record, await functions.compile_state(record))


@router.put(
    "/functions/{name}/code",
    summary="Replace a function's code with a zip upload",
    openapi_extra=ZIP_BODY,
)
async def put_function_code(request: Request, name: str) -> dict[str, Any]:
    name = full_name(request, name)
    content_type = request.headers.get("content-type", "")
    if content_type not in ("application/zip", "application/x-zip-compressed"):
        raise RequestInvalid("Content-Type: send the archive with Content-Type: application/zip")
    service = services(request)
    limit = service.settings.code.max_upload_bytes
    data = await read_body(request, limit, "zip: the archive", CODE_LIMIT)
    record = await service.functions.update(name, {}, CodeSource(zip_bytes=data))
    return function_out(record, await service.functions.compile_state(record))


@router.delete("/functions/{name}", summary="Delete a function and stop its instances")
async def delete_function(request: Request, name: str) -> dict[str, Any]:
    await services(request).functions.delete(full_name(request, name))
    return {"name": name, "deleted": True}
