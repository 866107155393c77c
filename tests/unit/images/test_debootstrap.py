"""The debootstrap builder, driven through a stand-in script; mirror and status parsing."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest

from nova.images import debootstrap
from nova.images.debootstrap import DebootstrapBuilder, host_mirror, host_suite, read_dpkg_status
from nova.images.errors import ImageBuildFailed
from nova.images.progress import BuildProgress
from nova.images.recipe import ImageRecipe

# Called like debootstrap: --variant=V --include=P SUITE TARGET MIRROR. The suite picks the
# behaviour, so one script covers success, failure and a hang.
FAKE_DEBOOTSTRAP = r"""#!/bin/sh
suite=$3; target=$4
echo "I: Retrieving InRelease "
echo "I: Resolving dependencies of required packages..."
case "$suite" in
  hang) exec sleep 60 ;;
  fail)
    mkdir -p "$target/debootstrap"
    echo "dpkg: error processing package libc6" > "$target/debootstrap/debootstrap.log"
    echo "W: Failure trying to run: chroot $target dpkg --force-depends --install"
    exit 1 ;;
esac
echo "I: Retrieving libc6 2.36-9"
echo "I: Validating libc6 2.36-9"
echo "I: Base system installed successfully."
mkdir -p "$target/var/lib/dpkg"
printf 'Package: libc6\nStatus: install ok installed\nVersion: 2.36-9\nArchitecture: amd64\nMulti-Arch: same\n\nPackage: python3\nStatus: install ok installed\nVersion: 3.11.2-1\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\n' > "$target/var/lib/dpkg/status"
"""


@pytest.fixture
def fake_debootstrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    script = tmp_path / "debootstrap"
    script.write_text(FAKE_DEBOOTSTRAP)
    script.chmod(0o755)
    monkeypatch.setattr(debootstrap.os, "geteuid", lambda: 0)  # the root check passes
    return str(script)


def _recipe(recipes: dict[str, ImageRecipe], suite: str) -> ImageRecipe:
    python = recipes["python"]
    return ImageRecipe(python.runtime, python.packages, python.interpreter, suite)


def test_a_build_streams_progress_and_returns_installed_versions(
    fake_debootstrap: str, tmp_path: Path, recipes: dict[str, ImageRecipe]
) -> None:
    builder = DebootstrapBuilder("http://mirror.example/debian", debootstrap=fake_debootstrap)
    seen: list[BuildProgress] = []

    versions = builder.build(
        _recipe(recipes, "bookworm"), tmp_path / "rootfs", seen.append, threading.Event()
    )

    assert versions == {"libc6:amd64": "2.36-9", "python3": "3.11.2-1"}
    assert [p.phase for p in seen] == ["resolve", "resolve", "download", "finish"]


def test_the_command_line(recipes: dict[str, ImageRecipe]) -> None:
    builder = DebootstrapBuilder("http://mirror.example/debian")
    assert builder.argv(recipes["node"], Path("/data/images/.build-node-x/rootfs")) == [
        "debootstrap",
        "--variant=minbase",
        "--include=nodejs,python3,ca-certificates",
        "bookworm",
        "/data/images/.build-node-x/rootfs",
        "http://mirror.example/debian",
    ]


def test_a_failure_reports_the_last_lines_and_debootstraps_log(
    fake_debootstrap: str, tmp_path: Path, recipes: dict[str, ImageRecipe]
) -> None:
    builder = DebootstrapBuilder("http://mirror.example/debian", debootstrap=fake_debootstrap)

    with pytest.raises(ImageBuildFailed) as raised:
        builder.build(
            _recipe(recipes, "fail"), tmp_path / "rootfs", lambda _: None, threading.Event()
        )

    message = raised.value.message
    assert message.startswith("debootstrap exited with status 1:")
    assert "W: Failure trying to run" in message
    assert "dpkg: error processing package libc6" in message


def test_cancel_stops_debootstrap_at_once(
    fake_debootstrap: str, tmp_path: Path, recipes: dict[str, ImageRecipe]
) -> None:
    builder = DebootstrapBuilder("http://mirror.example/debian", debootstrap=fake_debootstrap)
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    started = time.monotonic()

    with pytest.raises(ImageBuildFailed, match="the build was cancelled"):
        builder.build(_recipe(recipes, "hang"), tmp_path / "rootfs", lambda _: None, cancel)

    assert time.monotonic() - started < 5


def test_a_build_that_runs_too_long_is_stopped(
    fake_debootstrap: str, tmp_path: Path, recipes: dict[str, ImageRecipe]
) -> None:
    builder = DebootstrapBuilder(
        "http://mirror.example/debian", debootstrap=fake_debootstrap, timeout_s=0.5
    )
    with pytest.raises(ImageBuildFailed, match=re.escape("no result after 0.5 s")):
        builder.build(
            _recipe(recipes, "hang"), tmp_path / "rootfs", lambda _: None, threading.Event()
        )


def test_building_needs_root_and_debootstrap(
    monkeypatch: pytest.MonkeyPatch, recipes: dict[str, ImageRecipe], tmp_path: Path
) -> None:
    monkeypatch.setattr(debootstrap.os, "geteuid", lambda: 1000)
    with pytest.raises(ImageBuildFailed, match="needs root"):
        DebootstrapBuilder("m").check()
    monkeypatch.setattr(debootstrap.os, "geteuid", lambda: 0)
    with pytest.raises(ImageBuildFailed, match="apt-get install debootstrap"):
        DebootstrapBuilder("m", debootstrap="no-such-debootstrap").check()


def test_a_status_file_without_installed_packages_is_an_error(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text("Package: x\nStatus: purge ok not-installed\n")
    with pytest.raises(ImageBuildFailed, match="no installed packages"):
        read_dpkg_status(status)
    with pytest.raises(ImageBuildFailed, match="cannot read the package database"):
        read_dpkg_status(tmp_path / "missing")


def test_the_mirror_comes_from_the_hosts_apt_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n"
        "URIs: http://security.debian.org/debian-security\n"
        "Suites: bookworm-security\n"
        "Components: main\n"
        "\n"
        "Types: deb deb-src\n"
        "# a comment\n"
        "URIs: http://mirror.local/debian\n"
        "Suites: bookworm bookworm-updates\n"
        "Components: main\n"
    )
    assert host_mirror("bookworm", tmp_path) == "http://mirror.local/debian"
    assert host_mirror("trixie", tmp_path) == debootstrap.DEFAULT_MIRROR

    (tmp_path / "sources.list").write_text(
        "# deb http://old.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] http://one.example/debian bookworm main\n"
    )
    assert host_mirror("bookworm", tmp_path) == "http://one.example/debian"


def test_the_suite_is_the_hosts_debian_release(tmp_path: Path) -> None:
    os_release = tmp_path / "os-release"
    os_release.write_text("ID=debian\nVERSION_CODENAME=trixie\n")
    assert host_suite(os_release) == "trixie"
    os_release.write_text('ID=ubuntu\nVERSION_CODENAME="noble"\n')
    assert host_suite(os_release) == debootstrap.DEFAULT_SUITE
    assert host_suite(tmp_path / "missing") == debootstrap.DEFAULT_SUITE
