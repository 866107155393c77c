"""Real runtime images: one debootstrap build per session (~40-60 s), instances started on it.

The build skips, with the reason, where it cannot run here (not root, no debootstrap, the
Debian mirror unreachable) — except under CI=true, where that is a failure: CI must not go
green by skipping the only test of the real build. ``NOVA_TEST_IMAGES_DIR=<dir>`` keeps the
image between runs (a developer's shortcut; a recipe change still builds anew).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from nova.images.debootstrap import DebootstrapBuilder, host_mirror, host_suite
from nova.images.manifest import ImageManifest
from nova.images.recipe import ImagePolicy, debian_recipes
from nova.images.rootfs import remove_tree
from nova.images.service import ImageService
from nova.images.store import ImageStore
from nova.sandbox.container.backend import ContainerBackend
from nova.sandbox.container.roots import image_mount_points

# The escape suite's harness, reused so its tests run on a debian image too.
from tests.escape.conftest import (
    MAX_MESSAGE_BYTES,
    AgentSession,
    Sandbox,
    reachable_dir,
)
from tests.escape.test_container_escape import PROBES

PYTHON_ON_DEBIAN = ImagePolicy.parse("host", {"python": "debian"})


def _why_no_build(mirror: str, suite: str) -> str | None:
    if os.geteuid() != 0:
        return "building a debian image needs root (debootstrap)"
    if shutil.which("debootstrap", path="/usr/sbin:/usr/bin:/sbin:/bin") is None:
        return "debootstrap is not installed (apt-get install debootstrap)"
    url = f"{mirror}/dists/{suite}/InRelease"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=10):
            pass
    except OSError as exc:
        return f"the Debian mirror is unreachable ({url}: {exc})"
    return None


@pytest.fixture(scope="session")
def image_store() -> Iterator[ImageStore]:
    suite = host_suite()
    mirror = host_mirror(suite)
    reason = _why_no_build(mirror, suite)
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the debian image build must run in CI: {reason}")
        pytest.skip(reason)
    kept = os.environ.get("NOVA_TEST_IMAGES_DIR")
    root = Path(kept) if kept else Path(tempfile.mkdtemp(prefix="nova-images-"))
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)  # the sandbox user resolves the rootfs path itself
    store = ImageStore(
        root / "images", debian_recipes(suite, image_mount_points()), DebootstrapBuilder(mirror)
    )
    yield store
    if not kept:
        remove_tree(root)


@pytest.fixture(scope="session")
def python_image(image_store: ImageStore) -> ImageManifest:
    started = time.monotonic()
    manifest = image_store.build("python")
    print(f"\npython image {manifest.id}: ready in {time.monotonic() - started:.1f} s")
    return manifest


@pytest.fixture(scope="session")
def container_available() -> None:
    info = ContainerBackend.probe()
    if not info.available:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the container backend must work in CI: {info.reason}")
        pytest.skip(f"container backend unavailable: {info.reason}")


def _workspace() -> Iterator[Path]:
    path = reachable_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


workspace = pytest.fixture(_workspace, name="workspace")
shared_workspace = pytest.fixture(_workspace, scope="session", name="shared_workspace")


@contextlib.asynccontextmanager
async def _image_sandbox(image_store: ImageStore, workspace: Path) -> AsyncIterator[Sandbox]:
    """A container backend whose python instances run on the debian image."""
    backend = ContainerBackend(MAX_MESSAGE_BYTES)
    backend.use_images(ImageService(image_store, PYTHON_ON_DEBIAN, backend.host_image_id))
    box = Sandbox(backend, workspace)
    try:
        yield box
    finally:
        await box.close()
        await backend.close()


# The escape suite's fixtures under the same names, with python instances on the image.
@pytest_asyncio.fixture(loop_scope="session")
async def sandbox(
    container_available: None,
    workspace: Path,
    image_store: ImageStore,
    python_image: ImageManifest,
) -> AsyncIterator[Sandbox]:
    async with _image_sandbox(image_store, workspace) as box:
        yield box


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def shared_sandbox(
    container_available: None,
    shared_workspace: Path,
    image_store: ImageStore,
    python_image: ImageManifest,
) -> AsyncIterator[Sandbox]:
    async with _image_sandbox(image_store, shared_workspace) as box:
        yield box


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def probes(shared_sandbox: Sandbox) -> AgentSession:
    return await shared_sandbox.start(PROBES)
