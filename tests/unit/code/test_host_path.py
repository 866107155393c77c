"""`code_path`: off by default, confined to the allowed roots, sized before anything is read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nova.code import host_path
from nova.code.host_path import read_host_path
from nova.code.policy import CodePolicy
from nova.core.errors import RequestInvalid
from tests.zips import zip_bytes


def _policy(*roots: Path, max_unpacked_bytes: int = 1 << 20) -> CodePolicy:
    return CodePolicy(
        max_upload_bytes=1 << 20,
        max_files=100,
        max_unpacked_bytes=max_unpacked_bytes,
        allowed_paths=roots,
    )


@pytest.fixture
def root(tmp_path: Path) -> Path:
    allowed = tmp_path / "functions"
    (allowed / "app" / "pkg").mkdir(parents=True)
    (allowed / "app" / "handler.py").write_text("def handler(e, c):\n    return 1\n")
    (allowed / "app" / "pkg" / "mod.py").write_text("")
    (allowed / "app" / ".git").mkdir()
    (allowed / "app" / ".git" / "HEAD").write_text("ref")
    return allowed


def test_it_is_off_unless_roots_are_configured(root: Path) -> None:
    with pytest.raises(RequestInvalid, match=r"code\.allowed_paths") as refused:
        read_host_path(str(root / "app"), _policy())
    assert "NOVA_CODE__ALLOWED_PATHS" in refused.value.message


def test_a_directory_below_a_root_is_read_without_dot_files(root: Path) -> None:
    bundle = read_host_path(str(root / "app"), _policy(root))
    assert sorted(bundle.files) == ["handler.py", "pkg/mod.py"]


def test_a_zip_below_a_root_is_read(root: Path) -> None:
    (root / "code.zip").write_bytes(zip_bytes({"handler.py": "x"}))
    assert list(read_host_path(str(root / "code.zip"), _policy(root)).files) == ["handler.py"]


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("/etc", "is not below a directory in the daemon's code"),
        ("relative/app", "must be an absolute path"),
        ("/x/../etc", "without '..'"),
    ],
)
def test_paths_outside_the_roots_are_refused(root: Path, raw: str, fragment: str) -> None:
    with pytest.raises(RequestInvalid, match=fragment):
        read_host_path(raw, _policy(root))


def test_a_symlink_out_of_the_root_is_refused(root: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("root only")
    secret.chmod(0o600)
    (root / "app" / "leak.py").symlink_to(secret)
    with pytest.raises(RequestInvalid, match=r"'leak\.py' is a symlink .* outside the allowed"):
        read_host_path(str(root / "app"), _policy(root))
    (root / "linked").symlink_to(tmp_path)
    with pytest.raises(RequestInvalid, match="is not below a directory in"):
        read_host_path(str(root / "linked"), _policy(root))


def test_a_symlink_inside_the_root_is_followed(root: Path) -> None:
    (root / "shared.py").write_text("SHARED = 1\n")
    (root / "app" / "shared.py").symlink_to(root / "shared.py")
    bundle = read_host_path(str(root / "app"), _policy(root))
    assert bundle.files["shared.py"].content == b"SHARED = 1\n"


def test_only_regular_files_are_read(root: Path) -> None:
    os.mkfifo(root / "app" / "pipe")  # reading it would block the daemon forever
    with pytest.raises(RequestInvalid, match="'pipe' is not a regular file"):
        read_host_path(str(root / "app"), _policy(root))


def test_sizes_are_checked_from_stat_before_any_file_is_read(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (root / "app" / "huge.bin").open("wb") as sparse:
        sparse.truncate(2 << 30)  # 2 GiB of nothing: stat says so, reading would take seconds
    opened: list[str] = []
    real_open = os.open
    monkeypatch.setattr(
        host_path.os, "open", lambda path, *args: opened.append(str(path)) or real_open(path, *args)
    )
    with pytest.raises(RequestInvalid, match=r"code\.max_unpacked_bytes"):
        read_host_path(str(root / "app"), _policy(root))
    assert opened == []
