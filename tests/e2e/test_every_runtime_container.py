"""The hello of every available runtime in containers: interpreters, Nova's Runtime API
clients and compiled bootstraps run from the host's /usr inside the sandbox, not only on the
process backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from nova.sandbox.container.backend import ContainerBackend
from tests.e2e.daemon_process import isolated_daemon_api, skip_unless_available
from tests.e2e.test_every_runtime import EXPECTED, HELLO

_INFO = ContainerBackend.probe()
skip_unless_available(_INFO)


@pytest.fixture
def container_api(tmp_path: Path) -> Iterator[httpx.Client]:
    with isolated_daemon_api(tmp_path / "data", "container") as client:
        yield client


def test_hello_in_every_available_runtime_in_containers(container_api: httpx.Client) -> None:
    assert _INFO.available, _INFO.reason
    runtimes = container_api.get("/runtimes").json()["items"]
    for runtime in [item["name"] for item in runtimes if item["available"]]:
        name = f"boxed-{runtime}"
        body = {"name": name, "runtime": runtime, "files": HELLO[runtime]}
        created = container_api.post("/functions", json=body)
        assert created.status_code == 201, created.text
        result = container_api.post(f"/functions/{name}/invoke", json={"name": "nova"}).json()
        assert result["output"] == EXPECTED.get(runtime, {"hi": "nova"}), (runtime, result["error"])
