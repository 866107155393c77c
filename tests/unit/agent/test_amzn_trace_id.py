"""A W3C traceparent in the X-Ray form Lambda-style clients read from _X_AMZN_TRACE_ID; the
agent and the Python bootstrap (which cannot import nova) must agree."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

import nova.agent
from nova.agent.environment import amzn_trace_id, invocation_variables

TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
AMZN = "Root=1-0af76519-16cd43dd8448eb211c80319c;Parent=b7ad6b7169203331;Sampled=1"
NOT_TRACEPARENTS = [
    "",
    "t",
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
    "00-0af7651916cd43dd8448eb211c80319-b7ad6b7169203331-01",
    "00-zzf7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "0-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
]


def bootstrap() -> ModuleType:
    path = Path(nova.agent.__file__).parent / "bootstraps" / "python_bootstrap.py"
    spec = importlib.util.spec_from_file_location("python_bootstrap", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_traceparent_becomes_root_parent_and_sampled() -> None:
    assert amzn_trace_id(TRACE) == AMZN
    assert amzn_trace_id(TRACE[:-2] + "00") == AMZN[:-1] + "0"
    assert invocation_variables("r", TRACE)["_X_AMZN_TRACE_ID"] == AMZN


@pytest.mark.parametrize("value", NOT_TRACEPARENTS)
def test_anything_else_gives_none(value: str) -> None:
    assert amzn_trace_id(value) is None
    assert "_X_AMZN_TRACE_ID" not in invocation_variables("r", value)


@pytest.mark.parametrize("value", [TRACE, TRACE[:-2] + "00", *NOT_TRACEPARENTS])
def test_the_python_bootstrap_agrees(value: str) -> None:
    assert bootstrap()._amzn_trace_id(value) == amzn_trace_id(value)
