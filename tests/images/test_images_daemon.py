"""The image service inside a real daemon: /images over HTTP and `nova image` from the CLI.

The daemon's <data_dir>/images is the session's store (a symlink), so the image built once
for this directory serves here too and no second debootstrap runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from nova.images.manifest import ImageManifest
from nova.images.store import ImageStore
from tests.e2e.daemon_process import DaemonProcess

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.timeout(600)]

CODE = "def handler(event, context):\n    return 1\n"


@pytest.fixture
def daemon(
    tmp_path: Path,
    container_available: None,
    image_store: ImageStore,
    python_image: ImageManifest,
) -> Iterator[DaemonProcess]:
    data = tmp_path / "data"
    data.mkdir()
    (data / "images").symlink_to(image_store.root)
    env = {"NOVA_SANDBOX__ALLOW_PROCESS_BACKEND": "false", "NOVA_BACKEND": "container"}
    process = DaemonProcess(data, env=env).start()
    yield process
    process.stop()


def test_images_are_listed_with_the_instances_on_them(
    daemon: DaemonProcess, python_image: ImageManifest
) -> None:
    with daemon.client() as api:
        api.post("/functions", json={"name": "f", "runtime": "python", "code": CODE})
        assert api.post("/functions/f/invoke", json={}).json()["output"] == 1
        [instance] = api.get("/functions/f/instances").json()["items"]

        items = api.get("/images").json()["items"]
        status = api.get("/images/python").json()
        built = api.post("/images/python/build")

    rows = {(item["runtime"], item["kind"]): item for item in items}
    host = rows[("python", "host")]
    assert host["id"] == instance["image_id"]  # the default policy: the host root
    assert (host["selected"], host["in_use"], host["instances"]) == (True, True, 1)
    debian = rows[("python", "debian")]
    assert debian["id"] == python_image.id
    assert (debian["selected"], debian["in_use"]) == (False, False)
    assert status["state"] == "ready"
    assert status["image"]["id"] == python_image.id
    assert (built.status_code, built.json()["state"]) == (200, "ready")  # cached: a no-op


def test_the_cli_builds_and_lists(daemon: DaemonProcess, python_image: ImageManifest) -> None:
    built = daemon.cli("image", "build", "python")
    assert built.returncode == 0, built.stderr
    assert "up to date" in built.stderr
    assert python_image.id in built.stdout

    listed = daemon.cli("--json", "image", "list")
    assert listed.returncode == 0, listed.stderr
    ids = {item["id"] for item in json.loads(listed.stdout)["items"]}
    assert python_image.id in ids

    unknown = daemon.cli("image", "build", "cobol")
    assert unknown.returncode == 3
    assert "no image recipe for runtime 'cobol'" in unknown.stderr
