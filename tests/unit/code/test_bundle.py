"""Code validation: every path a filesystem would refuse, and every broken zip, is a 422."""

from __future__ import annotations

import io
import zipfile

import pytest

from nova.code import bundle as bundles
from nova.code.policy import MAX_NAME_BYTES, MAX_PATH_BYTES, CodePolicy
from nova.core.errors import RequestInvalid
from tests.zips import with_utf8_flag_on_invalid_name, zip_bytes

POLICY = CodePolicy(max_upload_bytes=1 << 20, max_files=10, max_unpacked_bytes=1000)


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("", "safe relative path"),
        ("/abs.py", "safe relative path"),
        ("../up.py", "safe relative path"),
        ("a/../b.py", "safe relative path"),
        ("a//b.py", "safe relative path"),
        ("a/", "safe relative path"),
        ("./a.py", "safe relative path"),
        ("a\\b.py", "safe relative path"),
        ("a\x00.py", "safe relative path"),
        ("\udc80.py", "not valid UTF-8"),
        ("x" * (MAX_NAME_BYTES + 1), f"at most {MAX_NAME_BYTES} bytes"),
        ("é" * 128, f"at most {MAX_NAME_BYTES} bytes"),  # 128 characters, 256 bytes
        ("/".join(["d" * 200] * 6), f"at most {MAX_PATH_BYTES} bytes"),
    ],
)
def test_paths_no_filesystem_can_hold_are_refused(path: str, fragment: str) -> None:
    with pytest.raises(RequestInvalid, match=fragment):
        bundles.validate_path(path, "files")


@pytest.mark.parametrize("path", ["a.py", "...", "x" * MAX_NAME_BYTES, "a b/ü.py", "-/.hidden"])
def test_paths_a_filesystem_holds_are_kept_as_given(path: str) -> None:
    assert bundles.validate_path(path, "files") == path


def test_a_file_where_another_path_needs_a_directory_is_refused() -> None:
    with pytest.raises(RequestInvalid, match="'a' is a file, but 'a/b/c' needs it to be a dir"):
        bundles.from_file_map({"a": "1", "a/b/c": "2"}, POLICY)
    bundles.from_file_map({"a/b": "1", "a/c": "2", "ab": "3"}, POLICY)  # siblings are fine


def test_file_maps_are_bounded_by_the_policy() -> None:
    with pytest.raises(RequestInvalid, match=r"11 files .* code.max_files"):
        bundles.from_file_map({f"f{i}.py": "" for i in range(11)}, POLICY)
    with pytest.raises(RequestInvalid, match=r"1001 bytes .* code.max_unpacked_bytes"):
        bundles.from_file_map({"big.py": "x" * 1001}, POLICY)


def test_zip_entries_follow_the_path_rules() -> None:
    conflicting = zip_bytes({"handler.py": "", "a": "1", "a/b": "2"})
    with pytest.raises(RequestInvalid, match="zip: 'a' is a file, but 'a/b'"):
        bundles.from_zip(conflicting, POLICY)
    with pytest.raises(RequestInvalid, match=f"at most {MAX_NAME_BYTES} bytes"):
        bundles.from_zip(zip_bytes({"n" * 300: ""}), POLICY)


def test_a_zip_naming_one_file_twice_is_refused() -> None:
    twice = zip_bytes([("handler.py", "a"), ("handler.py", "b")])
    with pytest.raises(RequestInvalid, match=r"'handler\.py' appears more than once"):
        bundles.from_zip(twice, POLICY)


def test_a_zip_name_flagged_utf8_that_is_not_is_refused() -> None:
    broken = with_utf8_flag_on_invalid_name(zip_bytes({"abc.py": "x"}), b"abc.py")
    with pytest.raises(RequestInvalid, match="zip: not a valid zip archive"):
        bundles.from_zip(broken, POLICY)


def test_a_zip_with_an_unknown_compression_method_is_refused() -> None:
    data = bytearray(zip_bytes({"a.py": "x" * 100}))
    # Method 99 (AES) in the central directory entry: zipfile raises NotImplementedError.
    entry = data.find(b"PK\x01\x02")
    data[entry + 10 : entry + 12] = (99).to_bytes(2, "little")
    with pytest.raises(RequestInvalid, match="zip: "):
        bundles.from_zip(bytes(data), POLICY)


def test_a_zip_bomb_is_refused_from_its_directory() -> None:
    bomb = zip_bytes({"zeros": b"\0" * 10_000})
    assert len(bomb) < 1000
    with pytest.raises(RequestInvalid, match=r"code\.max_unpacked_bytes"):
        bundles.from_zip(bomb, POLICY)


def test_zip_symlinks_are_refused() -> None:
    link = zipfile.ZipInfo("link")
    link.external_attr = 0o120777 << 16  # S_IFLNK
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(link, "/etc/passwd")
    with pytest.raises(RequestInvalid, match="symlinks are not allowed"):
        bundles.from_zip(buffer.getvalue(), POLICY)


def _empty_entries(count: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for index in range(count):
            archive.writestr(str(index), b"")
    return buffer.getvalue()


def test_a_zip_declaring_far_more_entries_than_files_allowed_is_refused_before_parsing() -> None:
    with pytest.raises(RequestInvalid, match="declares 21 entries"):
        bundles.from_zip(_empty_entries(21), POLICY)


def test_the_entry_count_is_read_from_the_end_record_and_its_zip64_form() -> None:
    assert bundles.declared_entries(_empty_entries(3)) == 3
    assert bundles.declared_entries(_empty_entries(70_000)) == 70_000  # > 0xFFFF: zip64
    assert bundles.declared_entries(b"not a zip") is None
