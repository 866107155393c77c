"""Container instances on a runtime image: the root's layout, its checks, bwrap's argv."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nova.core.errors import SandboxError
from nova.images.errors import ImageNotReady
from nova.images.ports import ImageRoot
from nova.sandbox.base import InstanceSpec
from nova.sandbox.container import bwrap as bw
from nova.sandbox.container.roots import (
    InstanceRoots,
    check_image_executable,
    image_layout,
    image_mount_points,
    resolve_in_root,
)
from nova.sandbox.container.setup import HostPaths

HOST_LAYOUT = bw.RootLayout((("usr/bin", "/bin"),), (), ("/etc/ld.so.cache",))
HOST = HostPaths(
    "/usr/bin/bwrap",
    HOST_LAYOUT,
    ("/usr", "/bin"),
    None,  # the daemon's own user: nothing to check for reachability
    Path("/a/nova/__init__.py"),
    Path("/a/nova/agent"),
    "host:abc",
)


def _image(tmp_path: Path) -> ImageRoot:
    rootfs = tmp_path / "debian-123/rootfs"
    (rootfs / "usr/bin").mkdir(parents=True)
    (rootfs / "bin").symlink_to("usr/bin")
    python = rootfs / "usr/bin/python3.11"
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)
    (rootfs / "usr/bin/python3").symlink_to("python3.11")
    (rootfs / "usr/bin/absolute").symlink_to("/usr/bin/python3")  # resolves inside the image
    (rootfs / "usr/bin/escape").symlink_to("../../../../../../usr/bin/python3")
    return ImageRoot("debian:123", rootfs, "/usr/bin/python3")


def _spec(interpreter: str, runtime: str = "python") -> InstanceSpec:
    return InstanceSpec(
        "i-1", "fn", runtime, interpreter, Path("/code"), Path("/work"), 128, 5.0, False
    )


class FakeImages:
    def __init__(self, image: ImageRoot | None, error: Exception | None = None) -> None:
        self.image, self.error = image, error

    async def resolve(self, runtime: str) -> ImageRoot | None:
        if self.error is not None:
            raise self.error
        return self.image


def test_links_resolve_inside_the_image(tmp_path: Path) -> None:
    image = _image(tmp_path)
    python = image.rootfs / "usr/bin/python3.11"

    assert resolve_in_root(image.rootfs, "/usr/bin/python3") == python
    assert resolve_in_root(image.rootfs, "/bin/python3") == python
    assert resolve_in_root(image.rootfs, "/usr/bin/absolute") == python
    assert resolve_in_root(image.rootfs, "/usr/bin/escape") == python  # .. stops at the root
    assert resolve_in_root(image.rootfs, "/usr/bin/node") is None
    assert resolve_in_root(image.rootfs, "usr/bin/python3") is None


def test_mount_points_cover_everything_bwrap_binds(tmp_path: Path) -> None:
    points = image_mount_points()

    assert {bw.CODE_DIR, f"{bw.AGENT_ROOT}/nova/agent", bw.TMP_DIR, "/proc", "/dev"} <= set(
        points.dirs
    )
    assert {f"{bw.AGENT_ROOT}/nova/__init__.py", *bw.GENERATED_ETC, "/etc/resolv.conf"} <= set(
        points.files
    )


def test_bwrap_binds_the_image_as_the_root(tmp_path: Path) -> None:
    image = _image(tmp_path)
    mounts = bw.InstanceMounts("/data/code", "/src/nova/__init__.py", "/src/nova/agent", 11, {})

    argv = bw.bwrap_argv(
        "/usr/bin/bwrap", image_layout(image), mounts, tmp_bytes=1 << 20, env={}, command=["x"]
    )

    binds = [argv[i + 1 : i + 3] for i, arg in enumerate(argv) if arg == "--ro-bind"]
    assert [str(image.rootfs), "/"] == binds[0]  # first, so everything else lands on top
    assert ["/usr", "/usr"] not in binds
    assert "--symlink" not in argv
    tries = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--ro-bind-try"]
    assert tries == ["/etc/resolv.conf"]  # not the host's loader cache or alternatives


async def test_instances_run_on_the_image_the_port_names(tmp_path: Path) -> None:
    image = _image(tmp_path)
    roots = InstanceRoots("/usr/bin/python3", FakeImages(image))

    layout, image_id = await roots.resolve(_spec("/usr/bin/python3"), HOST)

    assert image_id == "debian:123"
    assert layout.rootfs == str(image.rootfs)


async def test_without_images_or_for_host_runtimes_the_host_root_is_used(tmp_path: Path) -> None:
    for roots in (
        InstanceRoots("/usr/bin/python3"),
        InstanceRoots("/usr/bin/python3", FakeImages(None)),
    ):
        layout, image_id = await roots.resolve(_spec("/usr/bin/python3"), HOST)
        assert (layout, image_id) == (HOST_LAYOUT, "host:abc")


async def test_an_interpreter_missing_from_the_image_is_refused(tmp_path: Path) -> None:
    roots = InstanceRoots("/usr/bin/python3", FakeImages(_image(tmp_path)))

    with pytest.raises(
        SandboxError, match="outside what a container instance sees: image debian:123"
    ):
        await roots.resolve(_spec("/opt/venv/bin/python3"), HOST)


async def test_an_image_without_the_agents_python_is_refused(tmp_path: Path) -> None:
    image = _image(tmp_path)
    roots = InstanceRoots("/usr/bin/python3.12", FakeImages(image))

    with pytest.raises(
        SandboxError, match=re.escape("the agent's interpreter /usr/bin/python3.12")
    ):
        await roots.resolve(_spec("/usr/bin/python3"), HOST)


async def test_an_image_still_building_fails_the_start_with_its_error(tmp_path: Path) -> None:
    roots = InstanceRoots("/usr/bin/python3", FakeImages(None, ImageNotReady("being built")))

    with pytest.raises(ImageNotReady, match="being built"):
        await roots.resolve(_spec("/usr/bin/python3"), HOST)


def test_a_non_executable_interpreter_is_refused(tmp_path: Path) -> None:
    image = _image(tmp_path)
    (image.rootfs / "usr/bin/python3.11").chmod(0o644)
    with pytest.raises(SandboxError, match="no executable there"):
        check_image_executable(image, "/usr/bin/python3", "interpreter")
