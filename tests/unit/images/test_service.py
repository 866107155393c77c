"""The daemon's image service on a fake builder: background builds, status, the backend port."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from nova.images.errors import ImageNotFound, ImageNotReady, VmDrivesUnavailable
from nova.images.fake import FakeBuilder
from nova.images.ports import ImageRoot
from nova.images.progress import BuildProgress, ProgressSink
from nova.images.recipe import ImageKind, ImagePolicy, ImageRecipe
from nova.images.service import BuildState, ImageService
from nova.images.store import ImageStore

DEBIAN = ImagePolicy(ImageKind.DEBIAN)


def _service(
    tmp_path: Path,
    recipes: dict[str, ImageRecipe],
    builder: FakeBuilder,
    policy: ImagePolicy = DEBIAN,
    **kwargs: float,
) -> ImageService:
    return ImageService(
        ImageStore(tmp_path / "images", recipes, builder), policy, "host:abc", **kwargs
    )


async def test_host_runtimes_resolve_to_the_host_root(
    tmp_path: Path, recipes: dict[str, ImageRecipe], builder: FakeBuilder
) -> None:
    service = _service(tmp_path, recipes, builder, ImagePolicy())

    assert await service.resolve("python") is None
    assert builder.calls == []


async def test_the_first_cold_start_starts_the_build_and_fails_fast(
    tmp_path: Path, recipes: dict[str, ImageRecipe]
) -> None:
    gate = threading.Event()
    builder = FakeBuilder(gate=gate)
    service = _service(tmp_path, recipes, builder)

    with pytest.raises(ImageNotReady, match=r"is being built.*`nova image build python`"):
        await service.resolve("python")
    with pytest.raises(ImageNotReady):
        await service.resolve("python")  # single flight: still the same build
    assert service.status("python").state is BuildState.BUILDING
    gate.set()
    status = await service.wait("python")

    assert status.state is BuildState.READY
    assert status.progress is not None
    assert status.progress.fraction == 1.0
    root = await service.resolve("python")
    assert root is not None
    assert status.image is not None
    assert root.id == status.image.id
    assert root.rootfs == tmp_path / "images" / status.image.id.replace(":", "-") / "rootfs"
    assert root.interpreter == "/usr/bin/python3"
    assert builder.calls == ["python"]


async def test_an_image_built_earlier_is_found_at_start(
    tmp_path: Path, recipes: dict[str, ImageRecipe], builder: FakeBuilder
) -> None:
    built = ImageStore(tmp_path / "images", recipes, builder).build("python")

    service = _service(tmp_path, recipes, builder)

    root = await service.resolve("python")
    assert root is not None
    assert root.id == built.id
    assert service.start_build("python").state is BuildState.READY  # a no-op
    assert builder.calls == ["python"]


async def test_an_image_another_process_built_after_start_is_used_without_a_build(
    tmp_path: Path, recipes: dict[str, ImageRecipe], builder: FakeBuilder
) -> None:
    service = _service(tmp_path, recipes, builder)
    built = ImageStore(tmp_path / "images", recipes, builder).build("python")  # `nova image build`

    root = await service.resolve("python")

    assert root is not None
    assert root.id == built.id
    assert builder.calls == ["python"]  # only the other process's build


async def test_a_failed_build_is_reported_and_retried_only_later(
    tmp_path: Path, recipes: dict[str, ImageRecipe]
) -> None:
    builder = FakeBuilder(fail="E: Couldn't download packages")
    service = _service(tmp_path, recipes, builder, retry_failed_after_s=3600)
    with pytest.raises(ImageNotReady):
        await service.resolve("python")
    status = await service.wait("python")

    assert status.state is BuildState.FAILED
    assert status.error == "E: Couldn't download packages"
    assert status.finished_at is not None
    with pytest.raises(ImageNotReady, match="failed to build: E: Couldn't download packages"):
        await service.resolve("python")
    assert builder.calls == ["python"]  # no debootstrap per request

    service.start_build("python")  # `nova image build` retries at once
    await service.wait("python")
    assert builder.calls == ["python", "python"]


async def test_a_failed_build_is_retried_by_a_cold_start_after_the_delay(
    tmp_path: Path, recipes: dict[str, ImageRecipe]
) -> None:
    builder = FakeBuilder(fail="boom")
    service = _service(tmp_path, recipes, builder, retry_failed_after_s=0)
    for _ in range(2):
        with pytest.raises(ImageNotReady):
            await service.resolve("python")
        await service.wait("python")
    assert builder.calls == ["python", "python"]


async def test_prebuild_builds_only_what_the_policy_needs(
    tmp_path: Path, recipes: dict[str, ImageRecipe], builder: FakeBuilder
) -> None:
    service = _service(tmp_path, recipes, builder, ImagePolicy.parse("host", {"node": "debian"}))

    service.prebuild()
    await service.wait("node")

    assert builder.calls == ["node"]
    service.prebuild()  # built now: nothing to do
    assert service.status("node").state is BuildState.READY
    assert builder.calls == ["node"]


async def test_the_list_shows_host_roots_and_built_images_with_their_instances(
    tmp_path: Path, recipes: dict[str, ImageRecipe], builder: FakeBuilder
) -> None:
    service = _service(tmp_path, recipes, builder, ImagePolicy.parse("host", {"python": "debian"}))
    service.start_build("python")
    image = (await service.wait("python")).image
    assert image is not None

    views = await service.images({image.id: 2, "host:abc": 1})

    rows = {(v.runtime, v.kind): v.to_json() for v in views}
    assert set(rows) == {("node", "host"), ("python", "host"), ("python", "debian")}
    assert rows[("python", "debian")] == {
        "id": image.id,
        "runtime": "python",
        "kind": "debian",
        "size_bytes": image.size_bytes,
        "built_at": image.built_at,
        "current": True,
        "selected": True,
        "in_use": True,
        "instances": 2,
    }
    assert rows[("python", "host")]["selected"] is False
    assert rows[("node", "host")]["selected"] is True
    assert rows[("node", "host")]["size_bytes"] is None
    assert rows[("node", "host")]["instances"] == 1


async def test_status_serialises_for_the_api(
    tmp_path: Path, recipes: dict[str, ImageRecipe], builder: FakeBuilder
) -> None:
    service = _service(tmp_path, recipes, builder)

    absent = service.status("node").to_json()
    assert absent == {
        "runtime": "node",
        "selected": "debian",
        "state": "absent",
        "image": None,
        "progress": None,
        "error": None,
        "started_at": None,
        "finished_at": None,
        "vm": None,
    }
    started = service.start_build("node").to_json()
    assert started["state"] == "building"
    assert started["progress"]["phase"] == "resolve"
    ready = (await service.wait("node")).to_json()
    assert ready["image"]["packages"] == builder.versions
    with pytest.raises(ImageNotFound):
        service.status("cobol")


async def test_close_cancels_a_running_build(
    tmp_path: Path, recipes: dict[str, ImageRecipe]
) -> None:
    service = _service(tmp_path, recipes, FakeBuilder(gate=threading.Event()))
    service.start_build("python")
    await asyncio.sleep(0.05)

    await asyncio.wait_for(service.close(), 5)

    status = service.status("python")
    assert status.state is BuildState.FAILED
    assert status.error == "the build was cancelled"
    assert not list((tmp_path / "images").glob(".build-*"))


async def test_prune_deletes_only_superseded_images_no_instance_runs_on(
    tmp_path: Path, recipes: dict[str, ImageRecipe], builder: FakeBuilder
) -> None:
    service = _service(tmp_path, recipes, builder)
    images = []
    for libc in ("2.36-9", "2.36-9+deb12u1", "2.36-9+deb12u2"):  # two rebuilds after updates
        builder.versions["libc6"] = libc
        service.start_build("python", rebuild=True)
        image = (await service.wait("python")).image
        assert image is not None
        images.append(image)
    oldest, running, current = images

    removed = await service.prune({running.id: 1})

    assert [view.id for view in removed] == [oldest.id]
    assert removed[0].size_bytes == oldest.size_bytes
    on_disk = {view.id for view in await service.images({})}
    assert on_disk == {"host:abc", running.id, current.id}
    assert not (tmp_path / "images" / oldest.id.replace(":", "-")).exists()
    assert [p.name for p in (tmp_path / "images").iterdir() if p.name.startswith(".prune")] == []
    assert await service.prune({running.id: 1}) == []  # nothing left to do
    root = await service.resolve("python")
    assert root is not None
    assert root.id == current.id


async def test_prune_leaves_a_runtime_that_is_building_alone(
    tmp_path: Path, recipes: dict[str, ImageRecipe]
) -> None:
    gate = threading.Event()
    builder = FakeBuilder(gate=gate)
    service = _service(tmp_path, recipes, builder)
    gate.set()
    service.start_build("python")
    first = (await service.wait("python")).image
    builder.versions["libc6"] = "2.36-9+deb12u1"
    gate.clear()
    service.start_build("python", rebuild=True)  # held by the gate: first is still current

    assert await service.prune({}) == []

    gate.set()
    second = (await service.wait("python")).image
    assert first is not None
    assert second is not None
    assert second.id != first.id
    assert [view.id for view in await service.prune({})] == [first.id]


class FakeVmDrives:
    """Records what --vm builds were asked for; reports progress as the real one does."""

    def __init__(self) -> None:
        self.built: list[ImageRoot] = []

    def build_drives(self, image: ImageRoot, progress: ProgressSink) -> str:
        progress(BuildProgress("vm", 0.3, "the rootfs drive"))
        self.built.append(image)
        progress(BuildProgress("vm", 1.0, "ready"))
        return f"rootfs drive of {image.id}"


async def test_vm_builds_need_the_microvm_backend(
    tmp_path: Path, recipes: dict[str, ImageRecipe], builder: FakeBuilder
) -> None:
    service = _service(tmp_path, recipes, builder)
    with pytest.raises(VmDrivesUnavailable, match="no microvm backend"):
        service.start_build("python", vm=True)


async def test_a_vm_build_builds_the_image_then_the_vm_s_drives(
    tmp_path: Path, recipes: dict[str, ImageRecipe], builder: FakeBuilder
) -> None:
    service = _service(tmp_path, recipes, builder)
    drives = FakeVmDrives()
    service.use_vm_drives(drives)
    seen: list[float] = []
    started = service.start_build("python", vm=True)
    assert started.state is BuildState.BUILDING
    while (status := service.status("python")).state is BuildState.BUILDING:
        if status.progress is not None:
            seen.append(status.progress.fraction)
        await asyncio.sleep(0)
    assert status.state is BuildState.READY, status.error
    assert status.image is not None
    assert [root.id for root in drives.built] == [status.image.id]
    assert status.vm == f"rootfs drive of {status.image.id}"
    assert seen == sorted(seen)  # one bar, never going back

    # the image is up to date: --vm alone builds the VM's part again (cached by content)
    again = service.start_build("python", vm=True)
    assert again.state is BuildState.BUILDING
    assert again.progress is not None
    assert again.progress.phase == "vm"
    await service.wait("python")
    assert len(drives.built) == 2
    assert service.start_build("python").state is BuildState.READY  # without --vm: nothing
