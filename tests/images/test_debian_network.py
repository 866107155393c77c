"""``network: true`` (tests/escape/test_container_network.py) once more, on a debian image.

An image brings its own /etc, so what networking binds there (resolv.conf, the trust store)
must work on it too. The tests and the remote-host fixture are taken from the network suite;
``networked`` is replaced by one whose python instances run on the image.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from nova.images.manifest import ImageManifest
from nova.images.service import ImageService
from nova.images.store import ImageStore
from nova.sandbox.container.backend import ContainerBackend
from tests.escape import test_container_network as suite
from tests.escape.conftest import MAX_MESSAGE_BYTES
from tests.images.conftest import PYTHON_ON_DEBIAN

pytestmark = [pytest.mark.slow, pytest.mark.escape, pytest.mark.timeout(600)]

# That test runs the host's /usr/sbin/nft inside the instance to try to lift the firewall; an
# image has no nft at all, which is the stronger position but not what the test asserts.
_HOST_TOOLS_ONLY = {"test_the_function_cannot_lift_its_firewall"}

for _name, _value in vars(suite).items():
    if _name.startswith("test_") and _name not in _HOST_TOOLS_ONLY:
        globals()[_name] = _value
# The suite's fixtures this module's tests (and ``networked``) use by name.
remote_host = suite.remote_host
network_available = suite.network_available


@pytest_asyncio.fixture
async def networked(
    network_available: None,
    workspace: Path,
    image_store: ImageStore,
    python_image: ImageManifest,
) -> AsyncIterator[suite.Networked]:
    backend = ContainerBackend(MAX_MESSAGE_BYTES)
    backend.use_images(ImageService(image_store, PYTHON_ON_DEBIAN, backend.host_image_id))
    box = suite.Networked(backend, workspace)
    try:
        yield box
    finally:
        await asyncio.gather(*(s.instance.kill() for s in box.sessions))
        await backend.close()
