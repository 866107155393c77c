"""Zig and WebAssembly functions in containers (bwrap): built on the host, run in the sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from nova.sandbox.container.backend import ContainerBackend
from tests.e2e import zig_wasm_cases as cases
from tests.e2e.daemon_process import isolated_daemon_api, skip_unless_available

_INFO = ContainerBackend.probe()
skip_unless_available(_INFO)


@pytest.fixture(scope="module")
def container_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    with isolated_daemon_api(tmp_path_factory.mktemp("data"), "container") as client:
        yield client


def test_zig_and_wasm_are_available(container_api: httpx.Client) -> None:
    assert _INFO.available, _INFO.reason
    cases.available(container_api)


def test_a_zig_function_answers_and_fails_clearly(container_api: httpx.Client) -> None:
    cases.zig_function_answers_and_fails_clearly(container_api, "box")


def test_wasm_functions_answer_within_their_limits(
    container_api: httpx.Client, tmp_path: Path
) -> None:
    cases.wasm_functions_answer_within_their_limits(container_api, "box", tmp_path)


def test_wasm_build_failures_say_why(container_api: httpx.Client) -> None:
    cases.wasm_build_failures_say_why(container_api, "box")
