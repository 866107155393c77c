"""Runtime images: list them, build one in the background, follow its build, prune old ones."""

from __future__ import annotations

from collections import Counter
from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.responses import JSONResponse

from nova.api.routes.functions import services
from nova.images.errors import ImagesUnavailable
from nova.images.service import BuildState, ImageService

router = APIRouter(tags=["images"])


def images_of(request: Request) -> ImageService:
    """The daemon puts the image service on app.state next to the Services."""
    images: ImageService | None = getattr(request.app.state, "images", None)
    if images is None:
        raise ImagesUnavailable("this daemon runs without runtime images")
    return images


def _instances_per_image(request: Request) -> Counter[str]:
    counts: Counter[str] = Counter()
    for pool in services(request).pools.all():
        counts.update(info.image_id for info in pool.instances())
    return counts


@router.get("/images", summary="Runtime images: host roots and built debian images")
async def list_images(request: Request) -> dict[str, Any]:
    images = images_of(request)
    views = await images.images(_instances_per_image(request))
    return {"items": [view.to_json() for view in views], "next": None}


@router.post(
    "/images/prune",
    summary="Delete debian images no runtime uses any more and no instance runs on",
)
async def prune_images(request: Request) -> dict[str, Any]:
    removed = await images_of(request).prune(_instances_per_image(request))
    return {
        "removed": [view.to_json() for view in removed],
        "freed_bytes": sum(view.size_bytes or 0 for view in removed),
    }


@router.get("/images/{runtime}", summary="The runtime's image and the state of its build")
async def image_status(request: Request, runtime: str) -> dict[str, Any]:
    return images_of(request).status(runtime).to_json()


@router.post(
    "/images/{runtime}/build",
    summary="Build the runtime's debian image in the background (202); 200 if it is built",
    status_code=202,
)
async def build_image(
    request: Request,
    runtime: str,
    rebuild: bool = Query(False, description="Build even if an image of the recipe exists."),
    vm: bool = Query(
        False,
        description="Also build what a microVM boots from: the guest kernel, its initramfs "
        "and the image's rootfs drive (422 Image.VmUnavailable without the microvm backend).",
    ),
) -> JSONResponse:
    status = images_of(request).start_build(runtime, rebuild=rebuild, vm=vm)
    code = 202 if status.state is BuildState.BUILDING else 200
    return JSONResponse(status.to_json(), status_code=code)
