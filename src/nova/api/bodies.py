"""Reading request bodies under a size limit: JSON into a model, a zip, or multipart meta + zip."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.types import Message, Receive

from nova.api.errors import validation_message
from nova.core.errors import MalformedJson, PayloadTooLarge, RequestInvalid

Model = TypeVar("Model", bound=BaseModel)
CODE_LIMIT = "code.max_upload_bytes"  # the setting that bounds bodies with code
_MULTIPART_SLACK = 1024 * 1024  # the meta part and the multipart framing around the zip
# Bodies without code (an alias, a version to publish) are small; code bodies pass their limit.
MAX_JSON_BYTES = 1024 * 1024


def parse_model(model: type[Model], raw: bytes | str) -> Model:
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        status, _, message = validation_message(list(exc.errors()))
        raise (MalformedJson(message) if status == 400 else RequestInvalid(message)) from None


async def read_body(request: Request, limit: int, what: str, setting: str = "") -> bytes:
    """The whole body, refused with 413 as soon as it is known to exceed ``limit`` (the message
    names ``setting``, the daemon setting that raises it, if there is one)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(what, limit, setting)
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise _too_large(what, limit, setting)
    return bytes(data)


async def read_json_model(
    request: Request, model: type[Model], limit: int = MAX_JSON_BYTES, setting: str = ""
) -> Model:
    body = await read_body(request, limit, "the body", setting)
    if not body:
        raise MalformedJson("the body is empty; send a JSON object")
    return parse_model(model, body)


async def read_multipart(request: Request, model: type[Model], limit: int) -> tuple[Model, bytes]:
    """`meta` (JSON of the fields) + `zip` (the code archive), as API.md documents."""
    # Starlette bounds the size of fields but spools file parts to disk without a limit.
    counted = Request(request.scope, _counting(request.receive, limit + _MULTIPART_SLACK))
    async with counted.form(max_part_size=limit) as form:
        meta = form.get("meta")
        archive = form.get("zip")
        if meta is None:
            raise RequestInvalid(
                "meta: the multipart body needs a 'meta' part with the function's JSON fields"
            )
        if not isinstance(archive, UploadFile):
            raise RequestInvalid("zip: the multipart body needs a 'zip' file part")
        meta_raw = await meta.read() if isinstance(meta, UploadFile) else meta
        data = await archive.read(limit + 1)
    if len(data) > limit:
        raise _too_large("zip: the archive", limit, CODE_LIMIT)
    return parse_model(model, meta_raw), data


def is_multipart(request: Request) -> bool:
    return request.headers.get("content-type", "").startswith("multipart/form-data")


def _counting(receive: Receive, limit: int) -> Receive:
    """``receive`` that raises 413 once the body it has passed on exceeds ``limit``."""
    received = 0

    async def counted() -> Message:
        nonlocal received
        message = await receive()
        received += len(message.get("body", b""))
        if received > limit:
            raise _too_large("the body", limit, CODE_LIMIT)
        return message

    return counted


def _too_large(what: str, limit: int, setting: str) -> PayloadTooLarge:
    raise_it = f" (the daemon's {setting})" if setting else ""
    return PayloadTooLarge(f"{what} is larger than {limit} bytes{raise_it}")
