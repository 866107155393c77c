"""`nova image build|status|list` against the CLI's fake API."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from nova.cli.exit_codes import ExitCode
from nova.cli.main import app
from nova.cli.state import Ports
from tests.unit.cli.fakes import FakeApi

IMAGE = {
    "id": "debian:1a2b3c4d5e6f",
    "size_bytes": 128 * 1024 * 1024,
    "packages": {"python3": "3.11.2-1", "libc6": "2.36-9"},
    "built_at": "2025-05-20T10:00:00+00:00",
    "build_s": 38.6,
}


def _status(state: str, fraction: float = 0.0, **extra: Any) -> dict[str, Any]:
    return {
        "runtime": "python",
        "selected": "debian",
        "state": state,
        "image": IMAGE if state == "ready" else None,
        "progress": {
            "phase": "download",
            "fraction": fraction,
            "message": "downloading packages",
            "done": 3,
            "total": 112,
        },
        "error": None,
        "started_at": "2025-05-20T09:59:20+00:00",
        "finished_at": None,
        **extra,
    }


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def nova(api: FakeApi, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    monkeypatch.delenv("NOVA_ENDPOINT", raising=False)

    def run(*args: str) -> Result:
        ports = Ports(transport=httpx.MockTransport(api), sleep=lambda _: None)
        return CliRunner().invoke(app, list(args), obj=ports)

    return run


def _sequence(bodies: list[dict[str, Any]]) -> Callable[[httpx.Request], httpx.Response]:
    replies: Iterator[dict[str, Any]] = iter(bodies)

    def handler(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=next(replies))

    return handler


def test_build_follows_the_daemons_build_to_the_end(
    nova: Callable[..., Result], api: FakeApi
) -> None:
    api.on("POST", "/images/python/build", _status("building", 0.0), status=202)
    api.on(
        "GET",
        "/images/python",
        handler=_sequence(
            [_status("building", 0.3), _status("building", 0.7), _status("ready", 1.0)]
        ),
    )

    result = nova("image", "build", "python")

    assert result.exit_code == ExitCode.OK, result.output
    assert "debian:1a2b3c4d5e6f" in result.stdout
    assert "128.0 MiB" in result.stdout
    gets = [r for r in api.requests if r.method == "GET"]
    assert len(gets) == 3
    assert api.requests[0].url.params.get("rebuild") is None


def test_rebuild_is_passed_on(nova: Callable[..., Result], api: FakeApi) -> None:
    api.on("POST", "/images/python/build", _status("building"), status=202)
    api.on("GET", "/images/python", _status("ready", 1.0))

    result = nova("image", "build", "python", "--rebuild")

    assert result.exit_code == ExitCode.OK, result.output
    assert api.requests[0].url.params["rebuild"] == "true"


def test_vm_is_passed_on_and_what_it_built_is_shown(
    nova: Callable[..., Result], api: FakeApi
) -> None:
    api.on("POST", "/images/python/build", _status("building"), status=202)
    built = "guest vm-0123456789abcdef (kernel 6.1.0-57-cloud-amd64), rootfs drive x.ext4"
    api.on("GET", "/images/python", _status("ready", 1.0, vm=built))

    result = nova("image", "build", "python", "--vm")

    assert result.exit_code == ExitCode.OK, result.output
    assert api.requests[0].url.params["vm"] == "true"
    assert api.requests[0].url.params.get("rebuild") is None
    assert "guest vm-0123456789abcdef" in result.stdout


def test_an_image_that_exists_is_a_no_op(nova: Callable[..., Result], api: FakeApi) -> None:
    api.on("POST", "/images/python/build", _status("ready", 1.0), status=200)

    result = nova("image", "build", "python")

    assert result.exit_code == ExitCode.OK, result.output
    assert "up to date" in result.stderr
    assert [r.method for r in api.requests] == ["POST"]


def test_a_failed_build_exits_9_with_the_error(nova: Callable[..., Result], api: FakeApi) -> None:
    api.on("POST", "/images/python/build", _status("building"), status=202)
    api.on("GET", "/images/python", _status("failed", 0.3, error="E: Couldn't download packages"))

    result = nova("image", "build", "python")

    assert result.exit_code == ExitCode.SERVER_ERROR
    assert "building the python image failed: E: Couldn't download packages" in result.stderr


def test_build_json_prints_only_the_final_status(nova: Callable[..., Result], api: FakeApi) -> None:
    api.on("POST", "/images/python/build", _status("building"), status=202)
    api.on("GET", "/images/python", _status("ready", 1.0))

    result = nova("--json", "image", "build", "python")

    assert result.exit_code == ExitCode.OK, result.output
    assert json.loads(result.stdout)["image"]["id"] == IMAGE["id"]


def test_an_unknown_runtime_exits_3(nova: Callable[..., Result], api: FakeApi) -> None:
    api.on(
        "POST",
        "/images/cobol/build",
        {"error": {"code": "Image.NotFound", "message": "no image recipe for runtime 'cobol'"}},
        status=404,
    )

    result = nova("image", "build", "cobol")

    assert result.exit_code == ExitCode.NOT_FOUND
    assert "no image recipe for runtime 'cobol'" in result.stderr


def test_status_shows_the_last_error(nova: Callable[..., Result], api: FakeApi) -> None:
    api.on(
        "GET", "/images/python", _status("failed", 0.3, error="debootstrap exited with status 1")
    )

    result = nova("image", "status", "python")

    assert result.exit_code == ExitCode.OK, result.output
    assert "failed" in result.stdout
    assert "debootstrap exited with status 1" in result.stderr


def test_list_is_a_table(nova: Callable[..., Result], api: FakeApi) -> None:
    items = [
        {
            "id": "host:abc",
            "runtime": "python",
            "kind": "host",
            "size_bytes": None,
            "built_at": None,
            "current": True,
            "selected": False,
            "in_use": True,
            "instances": 2,
        },
        {
            "id": "debian:1a2b3c4d5e6f",
            "runtime": "python",
            "kind": "debian",
            "size_bytes": 134217728,
            "built_at": "2025-05-20T10:00:00+00:00",
            "current": True,
            "selected": True,
            "in_use": False,
            "instances": 0,
        },
    ]
    api.on("GET", "/images", {"items": items, "next": None})

    result = nova("image", "list")

    assert result.exit_code == ExitCode.OK, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["RUNTIME", "KIND", "ID", "SIZE", "BUILT", "SELECTED", "INSTANCES"]
    assert lines[1].split() == ["python", "host", "host:abc", "-", "-", "no", "2"]
    assert lines[2].split()[:4] == ["python", "debian", "debian:1a2b3c4d5e6f", "128.0"]
    assert lines[2].split()[-2:] == ["yes", "0"]


def test_prune_lists_what_it_deleted_and_what_that_freed(
    nova: Callable[..., Result], api: FakeApi
) -> None:
    gone = {
        "id": "debian:0ld0ld0ld0ld",
        "runtime": "python",
        "kind": "debian",
        "size_bytes": 134217728,
        "built_at": "2025-05-01T10:00:00+00:00",
        "current": False,
        "selected": False,
        "in_use": False,
        "instances": 0,
    }
    api.on("POST", "/images/prune", {"removed": [gone], "freed_bytes": 134217728})

    result = nova("image", "prune")

    assert result.exit_code == ExitCode.OK, result.output
    assert "debian:0ld0ld0ld0ld" in result.stdout
    assert "freed 128.0 MiB" in result.output


def test_prune_with_nothing_to_do_says_so(nova: Callable[..., Result], api: FakeApi) -> None:
    api.on("POST", "/images/prune", {"removed": [], "freed_bytes": 0})

    result = nova("image", "prune")

    assert result.exit_code == ExitCode.OK, result.output
    assert "nothing to prune" in result.output
