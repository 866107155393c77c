"""The config rules: each bound refuses what would fail at invoke time, and accepts the edge."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from nova.core.errors import NovaError, RequestInvalid
from nova.core.models import CodeBundle, CodeFile, ExecutionMode, FunctionConfig
from nova.functions import rules
from nova.sandbox.fake import FakeBackend
from nova.sandbox.registry import BackendRegistry, BackendUnavailable
from tests.unit.functions.conftest import LIMITS, backends, runtimes

BASE = FunctionConfig(name="fn", runtime="python", handler="handler.handler")


def _check(registry: BackendRegistry | None = None, **changes: Any) -> FunctionConfig:
    config = dataclasses.replace(BASE, **changes)
    return rules.check_config(config, runtimes(), registry or backends(FakeBackend()), LIMITS)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": "Bad_Name"}, "name"),
        ({"handler": "hé.handler"}, "handler"),
        ({"handler": "a b.handler"}, "handler"),
        ({"handler": "handler"}, "handler"),
        ({"handler": "../up.handler"}, "handler"),
        ({"handler": "a" * 300 + ".handler"}, "handler"),
        ({"memory_mb": 63}, "memory_mb"),
        ({"memory_mb": 10241}, "memory_mb"),
        ({"timeout_s": 0.0005}, "timeout_s"),
        ({"timeout_s": 900.5}, "timeout_s"),
        ({"timeout_s": float("nan")}, "timeout_s"),
        ({"env": {"A": "x\x00y"}}, "env"),
        ({"env": {"1A": "x"}}, "env"),
        ({"env": {"NOVA_X": "x"}}, "env"),
        ({"env": {"BIG": "x" * rules.MAX_ENV_BYTES}}, "env"),
        ({"env": {f"K{i}": "x" * 1000 for i in range(70)}}, "env"),
        ({"env": {"DB": "$SECRET:bad name"}}, "env: DB"),
        ({"max_replicas": 0}, "max_replicas"),
        ({"max_replicas": 1001}, "max_replicas"),
        ({"min_replicas": 3, "max_replicas": 2}, "min_replicas"),
        ({"min_replicas": -1}, "min_replicas"),
        ({"instance_concurrency": 0}, "instance_concurrency"),
        ({"instance_concurrency": 9, "memory_mb": 10240}, "instance_concurrency"),
        ({"instance_concurrency": 5, "memory_mb": 64}, "instance_concurrency"),
        ({"description": "x" * 1025}, "description"),
        ({"description": "a\x00b"}, "description"),
        ({"mode": "forever"}, "mode"),
    ],
)
def test_values_that_would_fail_invocations_are_refused(
    changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(RequestInvalid) as refused:
        _check(**changes)
    assert refused.value.message.startswith(f"{field}:"), refused.value.message


@pytest.mark.parametrize(
    "changes",
    [
        {"memory_mb": 64, "timeout_s": 0.1},
        {"memory_mb": 10240, "timeout_s": 900, "instance_concurrency": 8},
        {"instance_concurrency": 4, "memory_mb": 64},
        {"handler": "pkg/app.main"},
        {"handler": "pkg.app.main"},
        {"handler": "my-mod.$handler"},
        {"env": {"BIG": "x" * (rules.MAX_ENV_BYTES - 10)}},
        {"min_replicas": 1000, "max_replicas": 1000},
        {"description": "ü" * 1024},
    ],
)
def test_the_edges_of_each_bound_are_accepted(changes: dict[str, Any]) -> None:
    assert _check(**changes).mode is ExecutionMode.PERSISTENT


def test_backends_the_host_cannot_run_are_refused_with_the_reason() -> None:
    with pytest.raises(BackendUnavailable, match="runsc is not installed"):
        _check(backend="gvisor")
    with pytest.raises(BackendUnavailable, match="unknown backend"):
        _check(backend="vm")


def test_network_is_refused_where_the_backend_cannot_give_it() -> None:
    with pytest.raises(RequestInvalid, match=r"^network: instances on the fake backend"):
        _check(network=True)
    assert _check(backends(FakeBackend(supports_network=True)), network=True).network


def test_unknown_runtimes_are_refused() -> None:
    with pytest.raises(RequestInvalid, match=r"^runtime: unknown runtime 'cobol'"):
        _check(runtime="cobol")


@pytest.mark.parametrize(
    ("runtime", "handler", "files"),
    [
        ("python", "pkg.app.main", ("pkg/app.py",)),
        ("python", "pkg/app.main", ("pkg/app.py", "pkg/app/__init__.py")),
        ("node", "pkg.app.main", ("pkg.app.js", "pkg.app.cjs", "pkg.app.mjs")),
    ],
)
def test_handler_files_follow_how_each_runtime_imports(
    runtime: str, handler: str, files: tuple[str, ...]
) -> None:
    config = dataclasses.replace(BASE, runtime=runtime, handler=handler)
    assert set(files) <= set(rules.handler_files(config))
    rules.check_handler_file(config, CodeBundle({files[0]: CodeFile(b"")}))
    with pytest.raises(NovaError, match=f"needs the file {rules.handler_files(config)[0]}"):
        rules.check_handler_file(config, CodeBundle({"other.py": CodeFile(b"")}))


def test_custom_runtimes_take_one_invocation_at_a_time_in_a_lasting_bootstrap() -> None:
    custom = {"runtime": "provided", "handler": "function.handler"}
    assert _check(**custom).runtime == "provided"
    with pytest.raises(RequestInvalid, match="instance_concurrency"):
        _check(**custom, instance_concurrency=2)
    with pytest.raises(RequestInvalid, match="mode"):
        _check(**custom, mode=ExecutionMode.PROCESS)


def test_a_custom_runtime_needs_its_bootstrap_file() -> None:
    config = dataclasses.replace(BASE, runtime="provided")
    assert rules.handler_files(config) == ("bootstrap",)
    with pytest.raises(RequestInvalid, match="bootstrap"):
        rules.check_handler_file(config, CodeBundle({"main.sh": CodeFile(b"")}))
    rules.check_handler_file(config, CodeBundle({"bootstrap": CodeFile(b"", executable=True)}))


def test_the_custom_alias_names_provided() -> None:
    assert runtimes().canonical("custom") == "provided"
    assert runtimes().get("custom").spec.name == "provided"
