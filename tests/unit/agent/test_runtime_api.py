"""The Runtime API's HTTP layer against a fake backend: paths, prefixes, bodies, statuses."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator

import pytest

from nova.agent.runtime_api import ApiRefusal, RuntimeApiServer


class FakeBackend:
    def __init__(self) -> None:
        self.calls: list[tuple[str, object, object]] = []

    def next_event(self) -> tuple[bytes, dict[str, str]]:
        self.calls.append(("next", None, None))
        return b'{"n":1}', {"Lambda-Runtime-Aws-Request-Id": "r1"}

    def post_response(self, request_id: str, body: bytes) -> None:
        if request_id != "r1":
            raise ApiRefusal(400, "InvalidRequestID", "unknown")
        self.calls.append(("response", request_id, body))

    def post_error(self, request_id: str, body: bytes, error_type: str | None) -> None:
        self.calls.append(("error", body, error_type))

    def post_init_error(self, body: bytes, error_type: str | None) -> None:
        raise ApiRefusal(403, "InvalidStateTransition", "too late")


@pytest.fixture
def served() -> Iterator[tuple[FakeBackend, http.client.HTTPConnection]]:
    backend = FakeBackend()
    server = RuntimeApiServer(backend, max_body_bytes=100)
    server.start()
    host, port = server.address.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    yield backend, connection
    connection.close()
    server.stop()


def _call(
    connection: http.client.HTTPConnection,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    return response.status, dict(response.getheaders()), response.read()


@pytest.mark.parametrize("prefix", ["/2018-06-01/runtime", "/runtime/v1", "/runtime"])
def test_every_prefix_serves_next_and_response(
    served: tuple[FakeBackend, http.client.HTTPConnection], prefix: str
) -> None:
    backend, connection = served
    status, headers, body = _call(connection, "GET", f"{prefix}/invocation/next")
    assert (status, body) == (200, b'{"n":1}')
    assert headers["Lambda-Runtime-Aws-Request-Id"] == "r1"
    status, _, _ = _call(connection, "POST", f"{prefix}/invocation/r1/response", b"42")
    assert status == 202
    assert backend.calls[-1] == ("response", "r1", b"42")  # the same kept-alive connection


def test_statuses_and_error_bodies(served: tuple[FakeBackend, http.client.HTTPConnection]) -> None:
    backend, connection = served
    status, _, body = _call(connection, "POST", "/2018-06-01/runtime/invocation/zz/response", b"1")
    assert status == 400
    assert json.loads(body)["errorType"] == "InvalidRequestID"
    status, _, body = _call(connection, "POST", "/2018-06-01/runtime/init/error", b"{}")
    assert (status, json.loads(body)["errorType"]) == (403, "InvalidStateTransition")
    assert _call(connection, "GET", "/2018-06-01/runtime/nope")[0] == 404
    assert _call(connection, "POST", "/2018-06-01/runtime/invocation/next", b"")[0] == 405
    headers = {"Lambda-Runtime-Function-Error-Type": "Custom.Type"}
    path = "/2018-06-01/runtime/invocation/r1/error"
    assert _call(connection, "POST", path, b'{"errorMessage":"m"}', headers)[0] == 202
    assert backend.calls[-1] == ("error", b'{"errorMessage":"m"}', "Custom.Type")


def test_chunked_bodies_and_the_size_limit(
    served: tuple[FakeBackend, http.client.HTTPConnection],
) -> None:
    backend, connection = served
    path = "/2018-06-01/runtime/invocation/r1/response"
    connection.request("POST", path, body=iter([b'{"a":', b"1}"]), encode_chunked=True)
    response = connection.getresponse()
    response.read()
    assert response.status == 202
    assert backend.calls[-1] == ("response", "r1", b'{"a":1}')
    status, _, body = _call(connection, "POST", path, b"x" * 101)
    assert (status, json.loads(body)["errorType"]) == (413, "RequestEntityTooLarge")
