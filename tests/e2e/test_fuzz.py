"""Fuzzing the control and data plane: no input may produce a 5xx, a non-JSON error or damage.

Hypothesis generates bodies around the real field names (so it reaches validation rather than
bouncing off unknown keys) plus raw bytes for the invoke path.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.daemon_process import DaemonProcess

FIELDS = [
    "name",
    "runtime",
    "handler",
    "code",
    "files",
    "code_path",
    "memory_mb",
    "timeout_s",
    "env",
    "mode",
    "min_replicas",
    "max_replicas",
    "instance_concurrency",
    "backend",
    "network",
    "description",
]
ERROR_CODE = re.compile(r"^[A-Z][A-Za-z]+\.[A-Za-z.]+$")

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)
bodies = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), json_values, max_size=8)
names = st.sampled_from(["fz", "fuzz-ok"]) | st.text(max_size=12)


@pytest.fixture(scope="module")
def fuzz_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    daemon = DaemonProcess(Path(tmp_path_factory.mktemp("fuzz")) / "data").start()
    with daemon.client() as api:
        api.post(
            "/functions",
            json={
                "name": "fuzz-ok",
                "runtime": "python",
                "code": "def handler(e, c):\n    return e\n",
            },
        ).raise_for_status()
    yield daemon
    daemon.stop()


def _check(response: httpx.Response) -> None:
    assert response.status_code < 500, f"{response.status_code}: {response.text}"
    if response.status_code >= 400:
        error = response.json()["error"]
        assert ERROR_CODE.match(error["code"]), error
        assert error["message"]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=bodies)
def test_create_never_fails_badly(fuzz_daemon: DaemonProcess, body: dict[str, object]) -> None:
    with fuzz_daemon.client() as api:
        response = api.post("/functions", json=body)
        _check(response)
        if response.status_code == 201:
            name = response.json()["name"]
            _check(api.get(f"/functions/{name}"))
            api.delete(f"/functions/{name}").raise_for_status()


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=names, body=bodies)
def test_patch_never_fails_badly(
    fuzz_daemon: DaemonProcess, name: str, body: dict[str, object]
) -> None:
    with fuzz_daemon.client() as api:
        response = api.patch(f"/functions/{quote(name, safe='')}", json=body)
        _check(response)
        # Whatever happened, the reference function still answers.
        result = api.post("/functions/fuzz-ok/invoke", json={"still": "ok"})
        _check(result)
        assert result.status_code in (200, 429)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    payload=st.binary(max_size=256)
    | json_values.map(lambda value: httpx.Request("POST", "/", json=value).content)
)
def test_invoke_with_arbitrary_bytes(fuzz_daemon: DaemonProcess, payload: bytes) -> None:
    with fuzz_daemon.client() as api:
        _check(api.post("/functions/fuzz-ok/invoke", content=payload))
