"""/openapi.json describes every route, the invoke fast path and the hand-read bodies
included; /docs and /redoc work offline (every asset they load is served by the daemon)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from nova.api.app import create_app
from nova.api.schemas import FunctionCreate, FunctionPatch

ASSET_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


@asynccontextmanager
async def no_services(api: FastAPI) -> AsyncIterator[None]:
    yield


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(no_services))
    async with httpx.AsyncClient(transport=transport, base_url="http://nova.test") as client:
        yield client


@pytest.fixture
async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    reference = schema.get("$ref")
    if reference is None:
        return schema
    prefix = "#/components/schemas/"
    assert reference.startswith(prefix), reference
    resolved: dict[str, Any] = document["components"]["schemas"][reference[len(prefix) :]]
    return resolved


def test_the_invoke_route_is_documented(document: dict[str, Any]) -> None:
    operation = document["paths"]["/functions/{name}/invoke"]["post"]

    assert "application/json" in operation["requestBody"]["content"]
    ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
    fields = resolve(document, ok)["properties"]
    assert set(fields) == {
        "request_id",
        "output",
        "error",
        "duration_ms",
        "total_ms",
        "cold_start",
        "start",
        "phases",
        "version",
    }
    assert {"404", "413", "429"} <= set(operation["responses"])
    headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
    assert headers == {
        "x-nova-request-id",
        "traceparent",
        "tracestate",
        "x-nova-routing-key",
        "x-nova-invocation-type",
        "idempotency-key",
    }
    query = {p["name"] for p in operation["parameters"] if p["in"] == "query"}
    assert query == {"qualifier"}


@pytest.mark.parametrize(
    ("path", "method", "model"),
    [("/functions", "post", FunctionCreate), ("/functions/{name}", "patch", FunctionPatch)],
)
def test_create_and_update_bodies_are_documented(
    document: dict[str, Any], path: str, method: str, model: type[FunctionCreate]
) -> None:
    content = document["paths"][path][method]["requestBody"]["content"]

    as_json = resolve(document, content["application/json"]["schema"])
    assert set(as_json["properties"]) == set(model.model_fields)
    mode = resolve(document, as_json["properties"]["mode"]["anyOf"][0])
    assert mode["enum"] == ["persistent", "process"]  # nested models resolve too
    upload = content["multipart/form-data"]["schema"]
    assert upload["required"] == ["meta", "zip"]
    assert upload["properties"]["zip"] == {"type": "string", "format": "binary"}


def test_the_zip_upload_is_documented(document: dict[str, Any]) -> None:
    content = document["paths"]["/functions/{name}/code"]["put"]["requestBody"]["content"]

    assert content["application/zip"]["schema"]["format"] == "binary"


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_docs_pages_load_only_local_assets(client: httpx.AsyncClient, page: str) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", response.text)
    urls += re.findall(r"""(?:url|spec-url)\s*:\s*["']([^"']+)["']""", response.text)

    assets = [url for url in urls if url.endswith(tuple(ASSET_TYPES))]
    assert assets, response.text
    for url in urls:
        assert url.startswith("/"), f"{page} loads {url} from elsewhere"
    assert "http://" not in response.text
    assert "https://" not in response.text
    for url in assets:
        asset = await client.get(url)
        assert asset.status_code == 200, url
        suffix = url[url.rindex(".") :]
        assert asset.headers["content-type"].startswith(ASSET_TYPES[suffix]), url
        assert len(asset.content) > 0
