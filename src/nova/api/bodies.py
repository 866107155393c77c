"""Reading request bodies: JSON into a model, or a multipart meta + zip upload."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile
from starlette.requests import Request

from nova.api.errors import validation_message
from nova.core.errors import MalformedJson, PayloadTooLarge, RequestInvalid

Model = TypeVar("Model", bound=BaseModel)
MAX_ZIP_BYTES = 50 * 1024 * 1024


def parse_model(model: type[Model], raw: bytes | str) -> Model:
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        status, _, message = validation_message(list(exc.errors()))
        raise (MalformedJson(message) if status == 400 else RequestInvalid(message)) from None


async def read_json_model(request: Request, model: type[Model]) -> Model:
    body = await request.body()
    if not body:
        raise MalformedJson("the body is empty; send a JSON object")
    return parse_model(model, body)


async def read_multipart(request: Request, model: type[Model]) -> tuple[Model, bytes]:
    """`meta` (JSON of the fields) + `zip` (the code archive), as API.md documents."""
    async with request.form(max_part_size=MAX_ZIP_BYTES) as form:
        meta = form.get("meta")
        archive = form.get("zip")
        if meta is None:
            raise RequestInvalid(
                "meta: the multipart body needs a 'meta' part with the function's JSON fields"
            )
        if not isinstance(archive, UploadFile):
            raise RequestInvalid("zip: the multipart body needs a 'zip' file part")
        meta_raw = await meta.read() if isinstance(meta, UploadFile) else meta
        data = await archive.read(MAX_ZIP_BYTES + 1)
    if len(data) > MAX_ZIP_BYTES:
        raise PayloadTooLarge(f"zip: the archive is larger than {MAX_ZIP_BYTES} bytes")
    return parse_model(model, meta_raw), data


def is_multipart(request: Request) -> bool:
    return request.headers.get("content-type", "").startswith("multipart/form-data")
