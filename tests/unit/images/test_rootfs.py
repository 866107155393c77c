"""Filesystem work on roots: trimming without following links, safe removal, size."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from nova.images.rootfs import disk_usage, matches, mounts_below, remove_tree


def test_patterns_never_follow_symlinks_out_of_the_root(tmp_path: Path) -> None:
    outside = tmp_path / "host-docs"
    (outside / "precious").mkdir(parents=True)
    root = tmp_path / "root"
    (root / "usr/share/doc/a").mkdir(parents=True)
    (root / "usr/share/doc/a/README").write_text("x")
    (root / "usr/share/doc/link").symlink_to(outside)  # absolute: the host's, not the root's

    found = matches(root, "usr/share/doc/*/*")

    assert found == [root / "usr/share/doc/a/README"]
    assert matches(root, "usr/share/doc/link") == [root / "usr/share/doc/link"]  # the link itself


def test_dotfiles_and_missing_paths_do_not_match(tmp_path: Path) -> None:
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev/.hidden").write_text("")
    assert matches(tmp_path, "dev/*") == []
    assert matches(tmp_path, "var") == []


def test_disk_usage_counts_hard_links_once(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x" * 100_000)
    one = disk_usage(tmp_path)
    os.link(tmp_path / "a", tmp_path / "b")
    assert disk_usage(tmp_path) == one >= 100_000


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_remove_tree_detaches_mounts_left_inside_before_deleting(tmp_path: Path) -> None:
    # What a killed debootstrap leaves: a filesystem still mounted inside the partial root.
    proc = tmp_path / "build/rootfs/proc"
    proc.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(proc)], check=True)
    (proc / "file").write_text("inside the mount")
    assert mounts_below(tmp_path / "build") == [str(proc)]

    remove_tree(tmp_path / "build")

    assert not (tmp_path / "build").exists()
    assert mounts_below(tmp_path) == []
