"""`nova fn ...`: the requests sent and what people and scripts see."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import httpx

from nova.cli.exit_codes import ExitCode

from .fakes import FakeApi, RunNova, body_of, error_body, function_record, multipart_parts


def test_create_with_code_file_sends_its_text_and_only_the_given_fields(
    nova: RunNova, api: FakeApi, tmp_path: Path
) -> None:
    source = tmp_path / "handler.py"
    source.write_text("def handler(event, context):\n    return event\n")
    api.on("POST", "/functions", function_record(), status=201)

    result = nova(
        "fn", "create", "hello", "--runtime", "python", "--code-file", str(source),
        "--memory", "256", "--env", "A=1", "--env", "B=x=y", "--mode", "process",
    )  # fmt: skip

    assert result.exit_code == ExitCode.OK, result.output
    assert api.sent() == [("POST", "/functions")]
    assert body_of(api.last) == {
        "name": "hello",
        "runtime": "python",
        "code": "def handler(event, context):\n    return event\n",
        "memory_mb": 256,
        "env": {"A": "1", "B": "x=y"},
        "mode": "process",
    }
    assert "created hello" in result.stdout
    assert "nova invoke hello" in result.stderr


def test_create_with_dir_sends_a_files_map_without_caches_or_dot_dirs(
    nova: RunNova, api: FakeApi, tmp_path: Path
) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "handler.py").write_text("from lib.util import f\n")
    (tmp_path / "lib" / "util.py").write_text("def f(): ...\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "handler.cpython-311.pyc").write_bytes(b"\x00\x01")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    api.on("POST", "/functions", function_record(), status=201)

    result = nova("fn", "create", "hello", "-r", "python", "--dir", str(tmp_path))

    assert result.exit_code == ExitCode.OK, result.output
    assert body_of(api.last)["files"] == {
        "handler.py": "from lib.util import f\n",
        "lib/util.py": "def f(): ...\n",
    }


def test_create_with_dir_refuses_binary_files_and_suggests_zip(
    nova: RunNova, api: FakeApi, tmp_path: Path
) -> None:
    (tmp_path / "handler.py").write_text("x = 1\n")
    (tmp_path / "model.bin").write_bytes(b"\x89PNG\x00\x00")

    result = nova("fn", "create", "hello", "-r", "python", "--dir", str(tmp_path))

    assert result.exit_code == ExitCode.USAGE
    assert api.requests == []
    assert "error: " in result.stderr
    assert "model.bin is not a UTF-8 text file" in result.stderr
    assert "--zip" in result.stderr


def test_create_with_zip_posts_multipart_meta_and_zip(
    nova: RunNova, api: FakeApi, tmp_path: Path
) -> None:
    archive = tmp_path / "code.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("handler.py", "def handler(e, c): return 1\n")
    api.on("POST", "/functions", function_record(), status=201)

    result = nova(
        "fn", "create", "hello", "-r", "python", "--zip", str(archive),
        "--handler", "handler.handler", "--timeout", "5",
    )  # fmt: skip

    assert result.exit_code == ExitCode.OK, result.output
    parts = multipart_parts(api.last)
    assert set(parts) == {"meta", "zip"}
    meta_filename, _, meta = parts["meta"]
    assert meta_filename is None  # a plain form field, not a file
    assert json.loads(meta) == {
        "name": "hello",
        "runtime": "python",
        "handler": "handler.handler",
        "timeout_s": 5.0,
    }
    zip_filename, zip_type, zip_bytes = parts["zip"]
    assert (zip_filename, zip_type) == ("code.zip", "application/zip")
    assert zip_bytes == archive.read_bytes()


def test_create_without_code_is_a_usage_error(nova: RunNova, api: FakeApi) -> None:
    result = nova("fn", "create", "hello", "--runtime", "python")

    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.startswith("error: give the function's code with --code-file")
    assert api.requests == []


def test_create_with_two_code_sources_is_a_usage_error(
    nova: RunNova, api: FakeApi, tmp_path: Path
) -> None:
    source = tmp_path / "handler.py"
    source.write_text("x = 1\n")

    result = nova(
        "fn", "create", "hello", "-r", "python", "--code-file", str(source), "--dir", str(tmp_path)
    )  # fmt: skip

    assert result.exit_code == ExitCode.USAGE
    assert "give only one of" in result.stderr
    assert api.requests == []


def test_create_with_a_malformed_env_pair_is_a_usage_error(
    nova: RunNova, api: FakeApi, tmp_path: Path
) -> None:
    source = tmp_path / "handler.py"
    source.write_text("x = 1\n")

    result = nova("fn", "create", "f", "-r", "python", "--code-file", str(source), "-e", "NOPE")

    assert result.exit_code == ExitCode.USAGE
    assert "--env 'NOPE' is not KEY=VALUE" in result.stderr


def test_create_an_existing_function_exits_conflict(
    nova: RunNova, api: FakeApi, tmp_path: Path
) -> None:
    source = tmp_path / "handler.py"
    source.write_text("x = 1\n")
    api.on(
        "POST",
        "/functions",
        error_body("Function.AlreadyExists", "function 'hello' already exists"),
        status=409,
    )

    result = nova("fn", "create", "hello", "-r", "python", "--code-file", str(source))

    assert result.exit_code == ExitCode.CONFLICT
    assert result.stderr == "error: function 'hello' already exists\n"


def test_create_json_prints_only_the_record(nova: RunNova, api: FakeApi, tmp_path: Path) -> None:
    source = tmp_path / "handler.py"
    source.write_text("x = 1\n")
    api.on("POST", "/functions", function_record(), status=201)

    result = nova("--json", "fn", "create", "hello", "-r", "python", "--code-file", str(source))

    assert result.exit_code == ExitCode.OK
    assert json.loads(result.stdout) == function_record()
    assert result.stderr == ""


def test_list_follows_next_cursors(nova: RunNova, api: FakeApi) -> None:
    def pages(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("cursor") == "c1":
            return httpx.Response(200, json={"items": [function_record("beta")], "next": None})
        return httpx.Response(200, json={"items": [function_record("alpha")], "next": "c1"})

    api.on("GET", "/functions", handler=pages)

    result = nova("fn", "list")

    assert result.exit_code == ExitCode.OK, result.output
    assert [dict(request.url.params) for request in api.requests] == [
        {"limit": "100"},
        {"limit": "100", "cursor": "c1"},
    ]
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["NAME", "RUNTIME", "HANDLER"]
    assert [line.split()[0] for line in lines[1:]] == ["alpha", "beta"]


def test_list_json_merges_all_pages(nova: RunNova, api: FakeApi) -> None:
    def pages(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("cursor") == "c1":
            return httpx.Response(200, json={"items": [function_record("beta")], "next": None})
        return httpx.Response(200, json={"items": [function_record("alpha")], "next": "c1"})

    api.on("GET", "/functions", handler=pages)

    result = nova("--json", "fn", "list")

    listed = json.loads(result.stdout)
    assert [item["name"] for item in listed["items"]] == ["alpha", "beta"]
    assert listed["next"] is None


def test_list_with_no_functions_says_how_to_create_one(nova: RunNova, api: FakeApi) -> None:
    api.on("GET", "/functions", {"items": [], "next": None})

    result = nova("fn", "list")

    assert result.exit_code == ExitCode.OK
    assert result.stdout == ""
    assert "nova fn create" in result.stderr


def test_get_shows_the_record(nova: RunNova, api: FakeApi) -> None:
    api.on("GET", "/functions/hello", function_record(env={"A": "1"}, memory_mb=256))

    result = nova("fn", "get", "hello")

    assert result.exit_code == ExitCode.OK, result.output
    assert api.sent() == [("GET", "/functions/hello")]
    shown = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()}
    assert shown["name"] == ["hello"]
    assert shown["memory"] == ["256", "MB"]
    assert shown["env"] == ["A=1"]
    assert shown["code"] == ["2.0", "KiB", "sha256:" + "ab" * 32]


def test_get_json_prints_the_record(nova: RunNova, api: FakeApi) -> None:
    api.on("GET", "/functions/hello", function_record())

    result = nova("--json", "fn", "get", "hello")

    assert json.loads(result.stdout) == function_record()


def test_update_patches_only_the_given_fields(nova: RunNova, api: FakeApi) -> None:
    api.on("PATCH", "/functions/hello", function_record(memory_mb=512, revision=2))

    result = nova(
        "fn", "update", "hello", "--memory", "512", "--description", "v2", "--no-network"
    )  # fmt: skip

    assert result.exit_code == ExitCode.OK, result.output
    assert api.sent() == [("PATCH", "/functions/hello")]
    assert body_of(api.last) == {"memory_mb": 512, "description": "v2", "network": False}
    assert "updated hello" in result.stdout
    assert "revision 2" in result.stdout


def test_update_with_code_file_patches_code(nova: RunNova, api: FakeApi, tmp_path: Path) -> None:
    source = tmp_path / "handler.py"
    source.write_text("x = 2\n")
    api.on("PATCH", "/functions/hello", function_record(revision=2))

    result = nova("fn", "update", "hello", "--code-file", str(source))

    assert result.exit_code == ExitCode.OK, result.output
    assert body_of(api.last) == {"code": "x = 2\n"}


def test_update_with_zip_puts_the_code_then_patches_the_rest(
    nova: RunNova, api: FakeApi, tmp_path: Path
) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("handler.py", "x = 3\n")
    archive = tmp_path / "code.zip"
    archive.write_bytes(buffer.getvalue())
    api.on("PUT", "/functions/hello/code", function_record(revision=2))
    api.on("PATCH", "/functions/hello", function_record(revision=3, timeout_s=5.0))

    result = nova("fn", "update", "hello", "--zip", str(archive), "--timeout", "5")

    assert result.exit_code == ExitCode.OK, result.output
    assert api.sent() == [("PUT", "/functions/hello/code"), ("PATCH", "/functions/hello")]
    put = api.requests[0]
    assert put.headers["content-type"] == "application/zip"
    assert put.content == archive.read_bytes()
    assert body_of(api.requests[1]) == {"timeout_s": 5.0}
    assert "revision 3" in result.stdout


def test_update_with_only_a_zip_sends_no_patch(nova: RunNova, api: FakeApi, tmp_path: Path) -> None:
    archive = tmp_path / "code.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("handler.py", "x = 3\n")
    api.on("PUT", "/functions/hello/code", function_record(revision=2))

    result = nova("fn", "update", "hello", "--zip", str(archive))

    assert result.exit_code == ExitCode.OK, result.output
    assert api.sent() == [("PUT", "/functions/hello/code")]


def test_update_a_non_zip_archive_is_refused(nova: RunNova, api: FakeApi, tmp_path: Path) -> None:
    archive = tmp_path / "code.zip"
    archive.write_text("not a zip")

    result = nova("fn", "update", "hello", "--zip", str(archive))

    assert result.exit_code == ExitCode.USAGE
    assert "is not a zip archive" in result.stderr
    assert api.requests == []


def test_update_without_options_is_a_usage_error(nova: RunNova, api: FakeApi) -> None:
    result = nova("fn", "update", "hello")

    assert result.exit_code == ExitCode.USAGE
    assert "nothing to update" in result.stderr
    assert api.requests == []


def test_delete_with_yes_deletes_without_asking(nova: RunNova, api: FakeApi) -> None:
    api.on("DELETE", "/functions/hello", None, status=204)

    result = nova("fn", "delete", "hello", "--yes")

    assert result.exit_code == ExitCode.OK, result.output
    assert api.sent() == [("DELETE", "/functions/hello")]
    assert result.stdout == "deleted hello\n"


def test_delete_asks_and_a_no_keeps_the_function(nova: RunNova, api: FakeApi) -> None:
    result = nova("fn", "delete", "hello", input="n\n")

    assert result.exit_code == ExitCode.ABORTED
    assert api.requests == []
    assert "delete function 'hello'?" in result.stderr
    assert "error: function 'hello' was not deleted" in result.stderr


def test_delete_asks_and_a_yes_deletes(nova: RunNova, api: FakeApi) -> None:
    api.on("DELETE", "/functions/hello", None, status=204)

    result = nova("fn", "delete", "hello", input="y\n")

    assert result.exit_code == ExitCode.OK, result.output
    assert api.sent() == [("DELETE", "/functions/hello")]


def test_delete_json_reports_the_deletion(nova: RunNova, api: FakeApi) -> None:
    api.on("DELETE", "/functions/hello", None, status=204)

    result = nova("--json", "fn", "delete", "hello", "--yes")

    assert json.loads(result.stdout) == {"name": "hello", "deleted": True}


INSTANCE = {
    "id": "hello-0a1b2c3d4e5f",
    "state": "ready",
    "pid": 4242,
    "image_id": "host:262ed1f7a9c9",
    "code_hash": "ab" * 32,
    "inflight": 0,
    "invocations": 7,
    "age_s": 12.5,
    "idle_s": 3.25,
}


def test_instances_shows_a_table(nova: RunNova, api: FakeApi) -> None:
    api.on(
        "GET",
        "/functions/hello/instances",
        {"items": [INSTANCE], "next": None, "backend": "container"},
    )

    result = nova("fn", "instances", "hello")

    assert result.exit_code == ExitCode.OK, result.output
    assert api.sent() == [("GET", "/functions/hello/instances")]
    row = next(line.split() for line in result.stdout.splitlines() if line.startswith("hello-"))
    assert row[:5] == ["hello-0a1b2c3d4e5f", "ready", "4242", "host:262ed1f7a9c9", "0"]
    assert "container" in result.stderr


def test_instances_json_and_empty(nova: RunNova, api: FakeApi) -> None:
    body = {"items": [], "next": None, "backend": "process"}
    api.on("GET", "/functions/hello/instances", body)

    assert json.loads(nova("--json", "fn", "instances", "hello").stdout) == body
    assert "no running instances" in nova("fn", "instances", "hello").stderr
