"""Zig and WebAssembly functions on each real sandbox backend, containers (bwrap) and gVisor
(runsc): built on the host, run in the sandbox (gVisor hides CPU features the host's build
of a wasm module may use: the WASI host compiles it again there)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from nova.sandbox.base import BackendInfo
from nova.sandbox.container.backend import ContainerBackend
from nova.sandbox.gvisor.backend import GvisorBackend
from tests.e2e import zig_wasm_cases as cases
from tests.e2e.daemon_process import isolated_daemon_api

_BACKENDS: dict[str, BackendInfo] = {
    "container": ContainerBackend.probe(),
    "gvisor": GvisorBackend.probe(),
}


@pytest.fixture(scope="module", params=sorted(_BACKENDS))
def backend_api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    info = _BACKENDS[request.param]
    if not info.available:  # a failure under CI=true (tests/conftest.py)
        pytest.skip(f"{info.name} backend unavailable here: {info.reason}")
    with isolated_daemon_api(tmp_path_factory.mktemp(request.param), request.param) as client:
        yield client


def test_zig_and_wasm_are_available(backend_api: httpx.Client) -> None:
    cases.available(backend_api)


def test_a_zig_function_answers_and_fails_clearly(backend_api: httpx.Client) -> None:
    cases.zig_function_answers_and_fails_clearly(backend_api, "b")


def test_wasm_functions_answer_within_their_limits(
    backend_api: httpx.Client, tmp_path: Path
) -> None:
    cases.wasm_functions_answer_within_their_limits(backend_api, "b", tmp_path)


def test_wasm_build_failures_say_why(backend_api: httpx.Client) -> None:
    cases.wasm_build_failures_say_why(backend_api, "b")
