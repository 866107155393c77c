"""The code cache: a write that fails is a NovaError and leaves nothing on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from nova.code.cache import CodeCache
from nova.core.errors import CodeStorageFailed, RequestInvalid
from nova.core.models import CodeBundle, CodeFile


def _bundle(*paths: str) -> CodeBundle:
    return CodeBundle({path: CodeFile(b"x") for path in paths})


def _tree(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


def test_a_version_is_written_once_and_reused(tmp_path: Path) -> None:
    cache = CodeCache(tmp_path)
    bundle = _bundle("handler.py", "pkg/mod.py")
    first = cache.materialise("fn", bundle)
    assert (first / "pkg" / "mod.py").read_bytes() == b"x"
    assert cache.materialise("fn", bundle) == first
    version = f"fn/{bundle.sha256}"
    files = [f"{version}/handler.py", f"{version}/pkg", f"{version}/pkg/mod.py"]
    assert _tree(tmp_path) == ["fn", version, *files]


@pytest.mark.parametrize(
    "paths",
    [("n" * 300,), ("a", "a/b")],  # what validation refuses, written without it
    ids=["name-too-long", "file-and-directory"],
)
def test_a_name_the_filesystem_refuses_is_a_422_and_leaves_nothing(
    tmp_path: Path, paths: tuple[str, ...]
) -> None:
    with pytest.raises(RequestInvalid, match="cannot be written on the daemon's filesystem"):
        CodeCache(tmp_path).stage(_bundle(*paths))
    assert _tree(tmp_path) == []


def test_staged_code_is_adopted_or_discarded(tmp_path: Path) -> None:
    cache = CodeCache(tmp_path)
    kept = cache.materialise("fn", _bundle("handler.py"))
    before = _tree(tmp_path)
    cache.discard(cache.stage(_bundle("other.py")))  # a request that failed after staging
    assert _tree(tmp_path) == before
    again = cache.stage(_bundle("handler.py"))  # a version that is there already
    assert cache.adopt(again, "fn", kept.name) == kept
    assert _tree(tmp_path) == before


def test_a_broken_data_directory_is_a_storage_error(tmp_path: Path) -> None:
    root = tmp_path / "code"
    root.write_text("not a directory")
    with pytest.raises(CodeStorageFailed, match="could not write the code to its disk"):
        CodeCache(root).materialise("fn", _bundle("handler.py"))
