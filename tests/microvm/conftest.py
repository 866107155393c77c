"""Real microVMs under QEMU (TCG here: slow, so one backend per session and few boots).

Needs qemu-system-x86, linux-image-cloud-amd64, busybox-static and the debian runtime images
(built once per session by tests/images' fixtures; ``NOVA_TEST_IMAGES_DIR`` keeps them
between runs). Skips where any is missing, except under CI=true, where that fails.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from nova.images.manifest import ImageManifest
from nova.images.recipe import ImagePolicy
from nova.images.service import ImageService
from nova.images.store import ImageStore
from nova.sandbox.microvm.backend import MicrovmBackend
from nova.sandbox.microvm.layout import MicrovmOptions
from tests.escape.conftest import MAX_MESSAGE_BYTES
from tests.images.conftest import image_store, python_image  # noqa: F401 (fixtures)


@pytest.fixture(scope="session")
def microvm_available() -> None:
    info = MicrovmBackend.probe()
    if not info.available:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the microvm backend must work in CI: {info.reason}")
        pytest.skip(f"microvm backend unavailable: {info.reason}")


@pytest.fixture(scope="session")
def node_image(image_store: ImageStore) -> ImageManifest:  # noqa: F811
    return image_store.build("node")


@pytest.fixture(scope="session")
def vm_cache() -> Iterator[Path]:
    """Kernel, initramfs and rootfs drives: built once per session (or kept, with
    NOVA_TEST_IMAGES_DIR)."""
    kept = os.environ.get("NOVA_TEST_IMAGES_DIR")
    path = Path(kept) / "microvm" if kept else Path(tempfile.mkdtemp(prefix="nova-vm-"))
    yield path
    if not kept:
        shutil.rmtree(path, ignore_errors=True)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def vm_backend(
    microvm_available: None,
    image_store: ImageStore,  # noqa: F811
    python_image: ImageManifest,  # noqa: F811
    vm_cache: Path,
) -> AsyncIterator[MicrovmBackend]:
    backend = MicrovmBackend(
        MicrovmOptions(vm_cache, max_message_bytes=MAX_MESSAGE_BYTES),
        ImageService(image_store, ImagePolicy(), None),
    )
    yield backend
    await backend.close()


@pytest.fixture
def workspace() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="nova-vm-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
