"""A real debootstrap build of the python image, and a function running on it."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from nova.images.manifest import MARKER_PATH, ImageManifest
from nova.images.store import ImageStore
from tests.escape.conftest import Sandbox

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

REPO = str(Path(__file__).resolve().parents[2])

PROBE = """
import errno, json, os, sys


def _errno(call):
    try:
        call()
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc.errno))
    return "ok"


def _write(path):
    with open(path, "w") as f:
        f.write("x")


def handler(event, context):
    with open("/etc/nova-image") as f:
        marker = json.load(f)
    return {
        "marker": marker,
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "uid": os.getuid(),
        "top": sorted(os.listdir("/")),
        "visible": {p: os.path.exists(p) for p in event["hidden"]},
        "shadow": _errno(lambda: open("/etc/shadow").close()),
        "write_usr": _errno(lambda: _write("/usr/x")),
        "write_tmp": _errno(lambda: _write("/tmp/x")),
        "stdlib": [m for m in ("json", "asyncio", "sqlite3", "ssl", "http.client")
                   if __import__(m)],
    }
"""


def test_the_build_records_what_it_installed(
    python_image: ImageManifest, image_store: ImageStore
) -> None:
    assert python_image.id.startswith("debian:")
    assert python_image.runtime == "python"
    assert python_image.requested == ("python3", "ca-certificates")
    assert {"python3", "python3.11", "ca-certificates", "base-files"} <= {
        name.split(":")[0] for name in python_image.packages
    }
    assert 50e6 < python_image.size_bytes < 400e6
    rootfs = image_store.rootfs(python_image.id)
    assert json.loads((rootfs / MARKER_PATH).read_text())["id"] == python_image.id
    assert not (rootfs / "var").exists()
    assert (rootfs / "usr/bin/python3").exists()

    started = time.monotonic()
    assert image_store.build("python") == python_image  # cached: no second debootstrap
    assert time.monotonic() - started < 5


@pytest.mark.asyncio(loop_scope="session")  # the sandbox fixture's loop
async def test_a_function_runs_on_the_image_and_sees_nothing_of_the_host(
    sandbox: Sandbox, python_image: ImageManifest, workspace: Path
) -> None:
    session = await sandbox.start(PROBE)
    hidden = ["/work", REPO, str(workspace), "/root", "/home", "/var", "/sys", sys.prefix]

    seen = await session.output({"hidden": hidden})

    assert session.instance.image_id == python_image.id  # the instance record names it
    assert seen["marker"]["id"] == python_image.id  # and /etc of the image is what it sees
    upstream = python_image.packages["python3.11"].split("-")[0]
    assert seen["python"] == upstream
    assert seen["executable"] == "/usr/bin/python3"
    assert seen["uid"] == 65534
    assert seen["top"] == [
        "bin",
        "code",
        "dev",
        "etc",
        "lib",
        "lib64",
        "opt",
        "proc",
        "sbin",
        "tmp",
        "usr",
    ]
    assert seen["visible"] == dict.fromkeys(hidden, False)
    assert seen["shadow"] == "ENOENT"  # trimmed from the image; the host's is never bound
    assert seen["write_usr"] in ("EROFS", "EACCES")
    assert seen["write_tmp"] == "ok"
    assert seen["stdlib"] == ["json", "asyncio", "sqlite3", "ssl", "http.client"]
