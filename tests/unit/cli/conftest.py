from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from typer.testing import CliRunner, Result

from nova.cli.main import app
from nova.cli.state import Ports

from .fakes import FakeApi, RunNova


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def nova(api: FakeApi, monkeypatch: pytest.MonkeyPatch) -> RunNova:
    """Run ``nova ARGS...`` in-process against the fake API; stdout and stderr kept apart."""
    monkeypatch.delenv("NOVA_ENDPOINT", raising=False)
    monkeypatch.delenv("NOVA_API_KEY", raising=False)  # keys come from the test's flags only
    monkeypatch.setenv("NOVA_DATA_DIR", "/nonexistent/nova-data")
    runner = CliRunner()

    def run(
        *args: str,
        input: str | None = None,
        sleep: Callable[[float], None] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> Result:
        ports = Ports(
            transport=transport or httpx.MockTransport(api),
            sleep=sleep or (lambda seconds: None),
        )
        return runner.invoke(app, list(args), input=input, obj=ports)

    return run
