"""Each instance's own code directory: filled readable from the cache, replaced in place."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest

from nova.sandbox.instance_code import (
    create_instance_code_dir,
    instance_code_dir,
    remove_instance_code,
    replace_code_dir,
)


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point tempfile (where instance code dirs go) at a directory of this test's own."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _code(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o644)
    return root


def test_the_copy_is_readable_whatever_the_source_allows(private_tmp: Path) -> None:
    source = _code(private_tmp / "cache", {"handler.py": "x = 1\n", "lib/util.py": ""})
    (source / "run.sh").write_text("#!/bin/sh\n")
    (source / "run.sh").chmod(0o700)
    (source / "secret.py").write_text("")
    (source / "secret.py").chmod(0o600)
    source.chmod(0o700)  # what the code cache's mkdtemp staging leaves behind

    copy = create_instance_code_dir("fn-0123456789ab", source)

    assert copy == instance_code_dir("fn-0123456789ab") == private_tmp / "nova-code" / copy.name
    assert _mode(copy.parent) == 0o711  # instances cannot list each other's code dirs
    assert (_mode(copy), _mode(copy / "lib")) == (0o755, 0o755)
    assert (copy / "handler.py").read_text() == "x = 1\n"
    assert _mode(copy / "handler.py") == _mode(copy / "secret.py") == 0o644
    assert _mode(copy / "run.sh") == 0o755
    assert _mode(source / "secret.py") == 0o600  # the cache's own files are left alone


def test_files_with_the_right_mode_are_linked_others_copied(private_tmp: Path) -> None:
    source = _code(private_tmp / "cache", {"handler.py": "", "private.py": ""})
    (source / "private.py").chmod(0o600)

    copy = create_instance_code_dir("fn-1", source)

    # Same file system here: a link costs one syscall, whatever the file's size.
    assert (copy / "handler.py").stat().st_ino == (source / "handler.py").stat().st_ino
    assert (copy / "private.py").stat().st_ino != (source / "private.py").stat().st_ino


def test_symlinks_in_the_source_are_neither_followed_nor_copied(private_tmp: Path) -> None:
    outside = _code(private_tmp / "outside", {"secret.txt": "host secret"})
    source = _code(private_tmp / "cache", {"handler.py": ""})
    (source / "leak.txt").symlink_to(outside / "secret.txt")
    (source / "leakdir").symlink_to(outside)

    copy = create_instance_code_dir("fn-2", source)

    assert sorted(os.listdir(copy)) == ["handler.py"]


def test_replace_keeps_the_directory_and_swaps_everything_in_it(private_tmp: Path) -> None:
    old = _code(private_tmp / "v1", {"handler.py": "old", "stale.py": "", "pkg/a.py": ""})
    new = _code(private_tmp / "v2", {"handler.py": "new", "lib/helper.py": "help"})
    target = create_instance_code_dir("fn-3", old)
    inode = target.stat().st_ino
    outside = _code(private_tmp / "outside", {"keep.txt": "keep"})
    (target / "link").symlink_to(outside)  # as if it had got there somehow: not followed

    replace_code_dir(new, target)

    assert target.stat().st_ino == inode  # still the source of the sandbox's bind mount
    assert sorted(str(p.relative_to(target)) for p in target.rglob("*")) == [
        "handler.py",
        "lib",
        "lib/helper.py",
    ]
    assert (target / "handler.py").read_text() == "new"
    assert (outside / "keep.txt").read_text() == "keep"
    assert (old / "handler.py").read_text() == "old"  # the old version's cache is untouched


def test_remove_deletes_the_instance_s_code(private_tmp: Path) -> None:
    create_instance_code_dir("fn-4", _code(private_tmp / "cache", {"handler.py": ""}))
    remove_instance_code("fn-4")
    remove_instance_code("fn-4")  # idempotent
    assert not instance_code_dir("fn-4").exists()
