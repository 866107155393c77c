"""The on-disk image store, on a fake builder: manifests, ids, atomic builds, the cache."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
from pathlib import Path

import pytest

from nova.images.errors import ImageBuildFailed, ImageNotFound
from nova.images.fake import FAKE_VERSIONS, FakeBuilder
from nova.images.manifest import debian_image_id, read_manifest
from nova.images.progress import BuildProgress
from nova.images.recipe import ImageRecipe
from nova.images.store import ImageStore


def test_build_writes_the_manifest_next_to_a_finished_root(
    store: ImageStore, recipes: dict[str, ImageRecipe]
) -> None:
    seen: list[BuildProgress] = []

    manifest = store.build("python", progress=seen.append)

    image_dir = store.root / manifest.id.replace(":", "-")
    assert read_manifest(image_dir) == manifest
    assert manifest.id == debian_image_id(recipes["python"], FAKE_VERSIONS)
    assert manifest.runtime == "python"
    assert manifest.kind == "debian"
    assert manifest.suite == "bookworm"
    assert manifest.requested == ("python3", "ca-certificates")
    assert dict(manifest.packages) == FAKE_VERSIONS
    assert manifest.interpreter == "/usr/bin/python3"
    assert manifest.mirror == "fake://mirror"
    assert manifest.size_bytes > 0
    assert manifest.recipe_digest == recipes["python"].digest
    assert [p.phase for p in seen] == ["download", "finish", "finish"]
    rootfs = store.rootfs(manifest.id)
    assert rootfs == image_dir / "rootfs"
    marker = json.loads((rootfs / "etc/nova-image").read_text())
    assert marker == {"id": manifest.id, "runtime": "python", "recipe": manifest.recipe_digest}


def test_the_layer_trims_the_root_and_creates_mount_points(store: ImageStore) -> None:
    rootfs = store.rootfs(store.build("python").id)

    for gone in (
        "var",
        "etc/shadow",
        "etc/hostname",
        "dev/null",
        "usr/share/doc/libc6/changelog.gz",
    ):
        assert not os.path.lexists(rootfs / gone), gone
    assert (rootfs / "usr/share/doc/libc6/copyright").is_file()  # licences stay
    assert (rootfs / "dev").is_dir()  # emptied, kept as a mount point
    for directory in ("code", "opt/nova/nova/agent", "tmp"):
        assert (rootfs / directory).is_dir(), directory
    for file in ("opt/nova/nova/__init__.py", "etc/hosts", "etc/resolv.conf"):
        assert (rootfs / file).is_file(), file


def test_every_directory_on_the_way_is_searchable_by_the_sandbox_user(store: ImageStore) -> None:
    previous = os.umask(0o077)  # a daemon with a strict umask must still build usable images
    try:
        manifest = store.build("python")
    finally:
        os.umask(previous)
    rootfs = store.rootfs(manifest.id)
    for path in (store.root, rootfs.parent, rootfs, rootfs / "opt/nova", rootfs / "code"):
        assert stat.S_IMODE(path.stat().st_mode) & 0o005 == 0o005, path


def test_the_id_is_stable_and_follows_package_versions(
    tmp_path: Path, recipes: dict[str, ImageRecipe]
) -> None:
    first = ImageStore(tmp_path / "a", recipes, FakeBuilder()).build("python")
    again = ImageStore(tmp_path / "b", recipes, FakeBuilder()).build("python")
    upgraded = ImageStore(
        tmp_path / "c", recipes, FakeBuilder({**FAKE_VERSIONS, "libc6": "2.36-9+deb12u1"})
    ).build("python")

    assert first.id == again.id
    assert first.id.startswith("debian:")
    assert len(first.id) == len("debian:") + 12
    assert upgraded.id != first.id


def test_the_id_follows_the_recipe_but_not_the_progress_hint(
    recipes: dict[str, ImageRecipe],
) -> None:
    python = recipes["python"]
    hinted = dataclasses.replace(python, expected_packages=999)
    more = dataclasses.replace(python, packages=(*python.packages, "python3-yaml"))

    assert debian_image_id(hinted, FAKE_VERSIONS) == debian_image_id(python, FAKE_VERSIONS)
    assert debian_image_id(more, FAKE_VERSIONS) != debian_image_id(python, FAKE_VERSIONS)
    assert debian_image_id(recipes["node"], FAKE_VERSIONS) != debian_image_id(python, FAKE_VERSIONS)


def test_a_second_build_is_a_cache_hit_unless_rebuild(
    store: ImageStore, builder: FakeBuilder
) -> None:
    built = store.build("python")
    cached = store.build("python")

    assert cached == built
    assert builder.calls == ["python"]

    rebuilt = store.build("python", rebuild=True)

    assert builder.calls == ["python", "python"]
    # Same recipe, same versions: the same image, kept in place with its first build time.
    assert rebuilt == built
    assert [m.id for m in store.manifests()] == [built.id]


def test_a_rebuild_with_new_versions_becomes_current_and_keeps_the_old_image(
    store: ImageStore, builder: FakeBuilder
) -> None:
    old = store.build("python")
    builder.versions = {**FAKE_VERSIONS, "python3": "3.11.2-2"}

    new = store.build("python", rebuild=True)

    assert new.id != old.id
    assert store.current("python") == new
    assert {m.id for m in store.manifests()} == {old.id, new.id}
    assert store.rootfs(old.id).is_dir()  # instances may still run on it


def test_an_image_appears_only_once_complete(store: ImageStore, builder: FakeBuilder) -> None:
    manifest = store.build("python")

    # While building, the store's root held the build's staging dir and no image dir.
    (during,) = builder.seen_image_dirs
    assert [name for name in during if not name.startswith(".")] == []
    assert any(name.startswith(".build-python-") for name in during)
    assert sorted(p.name for p in store.root.iterdir() if not p.name.startswith(".")) == [
        manifest.id.replace(":", "-")
    ]


def test_a_failed_build_leaves_nothing_behind(
    tmp_path: Path, recipes: dict[str, ImageRecipe]
) -> None:
    store = ImageStore(tmp_path / "images", recipes, FakeBuilder(fail="mirror unreachable"))

    with pytest.raises(ImageBuildFailed, match="mirror unreachable"):
        store.build("python")

    assert store.manifests() == []
    assert store.current("python") is None
    assert not list(store.root.glob(".build-*"))


def test_leftovers_of_an_interrupted_build_are_removed(store: ImageStore) -> None:
    stale = store.root / ".build-python-crashed"
    (stale / "rootfs/usr").mkdir(parents=True)
    other = store.root / ".build-node-running"
    other.mkdir()

    store.build("python")

    assert not stale.exists()
    assert other.exists()  # another runtime's build is not ours to judge


def test_images_of_an_older_recipe_are_listed_but_not_current(
    tmp_path: Path, recipes: dict[str, ImageRecipe]
) -> None:
    old = ImageStore(tmp_path, recipes, FakeBuilder()).build("python")
    changed = {**recipes, "python": dataclasses.replace(recipes["python"], layer=99)}
    store = ImageStore(tmp_path, changed, FakeBuilder())

    assert store.current("python") is None
    assert [m.id for m in store.manifests()] == [old.id]


def test_directories_that_are_not_images_are_skipped(store: ImageStore) -> None:
    (store.root / "junk").mkdir()
    (store.root / "broken").mkdir()
    (store.root / "broken/manifest.json").write_text("{not json")

    assert store.manifests() == []


def test_unknown_runtimes_are_refused(store: ImageStore) -> None:
    with pytest.raises(ImageNotFound, match="images exist for: node, python"):
        store.build("cobol")


def test_remove_deletes_an_image_whole_and_refuses_an_unknown_one(store: ImageStore) -> None:
    manifest = store.build("python")

    store.remove(manifest.id)

    assert store.manifests() == []
    assert sorted(p.name for p in store.root.iterdir()) == [".lock-python"]
    with pytest.raises(ImageNotFound, match="no image"):
        store.remove(manifest.id)
