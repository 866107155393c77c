"""GET /images, GET /images/{runtime}, POST /images/{runtime}/build on a fake builder."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI

from nova.api import errors
from nova.api.routes import images as images_routes
from nova.images.fake import FakeBuilder
from nova.images.recipe import ImagePolicy, ImageRecipe
from nova.images.service import ImageService
from nova.images.store import ImageStore


@dataclass
class _Info:
    image_id: str


class _Pool:
    def __init__(self, image_ids: list[str]) -> None:
        self._infos = [_Info(i) for i in image_ids]

    def instances(self) -> list[_Info]:
        return self._infos


class _Pools:
    """The method of PoolManager the route reads."""

    def __init__(self, pools: dict[str, _Pool]) -> None:
        self._pools = pools

    def all(self) -> list[_Pool]:
        return list(self._pools.values())


@pytest.fixture
def gate() -> threading.Event:
    return threading.Event()


@pytest.fixture
def gated_builder(gate: threading.Event) -> FakeBuilder:
    return FakeBuilder(gate=gate)


@pytest.fixture
def service(
    tmp_path: Path, recipes: dict[str, ImageRecipe], gated_builder: FakeBuilder
) -> ImageService:
    store = ImageStore(tmp_path / "images", recipes, gated_builder)
    return ImageService(store, ImagePolicy.parse("host", {"python": "debian"}), "host:abc")


@pytest.fixture
async def client(service: ImageService) -> AsyncIterator[httpx.AsyncClient]:
    api = FastAPI()
    errors.install(api)
    api.include_router(images_routes.router)
    api.state.images = service
    api.state.services = SimpleNamespace(pools=_Pools({"a": _Pool(["host:abc", "host:abc"])}))
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://nova") as http:
        yield http
    await service.close()


async def test_a_build_runs_in_the_background_and_its_status_can_be_followed(
    client: httpx.AsyncClient, service: ImageService, gate: threading.Event
) -> None:
    started = await client.post("/images/python/build")

    assert started.status_code == 202
    assert started.json()["state"] == "building"
    assert (await client.get("/images/python")).json()["state"] == "building"
    again = await client.post("/images/python/build")
    assert (again.status_code, again.json()["state"]) == (202, "building")  # one build
    gate.set()
    await service.wait("python")

    ready = (await client.get("/images/python")).json()
    assert ready["state"] == "ready"
    assert ready["selected"] == "debian"
    assert ready["image"]["id"].startswith("debian:")
    cached = await client.post("/images/python/build")
    assert (cached.status_code, cached.json()["state"]) == (200, "ready")
    rebuilt = await client.post("/images/python/build", params={"rebuild": "true"})
    assert (rebuilt.status_code, rebuilt.json()["state"]) == (202, "building")


async def test_the_list_counts_instances_per_image(
    client: httpx.AsyncClient, service: ImageService, gate: threading.Event
) -> None:
    gate.set()
    service.start_build("python")
    await service.wait("python")

    body = (await client.get("/images")).json()

    assert body["next"] is None
    rows = {(item["runtime"], item["kind"]): item for item in body["items"]}
    assert rows[("node", "host")]["instances"] == 2
    assert rows[("node", "host")]["in_use"] is True
    assert rows[("python", "debian")]["in_use"] is False
    assert rows[("python", "debian")]["selected"] is True


async def test_unknown_runtimes_are_404(client: httpx.AsyncClient) -> None:
    for response in (await client.get("/images/cobol"), await client.post("/images/cobol/build")):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "Image.NotFound"


async def test_without_an_image_service_the_routes_say_so() -> None:
    api = FastAPI()
    errors.install(api)
    api.include_router(images_routes.router)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api), base_url="http://nova"
    ) as http:
        response = await http.get("/images")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "Image.Unavailable"


async def test_prune_removes_superseded_images_and_reports_the_bytes_freed(
    client: httpx.AsyncClient,
    service: ImageService,
    gate: threading.Event,
    gated_builder: FakeBuilder,
) -> None:
    gate.set()
    service.start_build("python")
    old = (await service.wait("python")).image
    gated_builder.versions["libc6"] = "2.36-9+deb12u1"  # the archive moved on: a new id
    service.start_build("python", rebuild=True)
    new = (await service.wait("python")).image
    assert old is not None
    assert new is not None
    assert old.id != new.id

    response = await client.post("/images/prune")

    assert response.status_code == 200
    body = response.json()
    assert [item["id"] for item in body["removed"]] == [old.id]
    assert body["freed_bytes"] == old.size_bytes
    listed = {item["id"] for item in (await client.get("/images")).json()["items"]}
    assert old.id not in listed
    assert new.id in listed
