"""What the daemon says when it is ready: the address, and a warning when the unauthenticated
API listens beyond this machine."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from nova.config import load_settings
from nova.daemon import _announce, is_loopback_host


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("nova.example", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize(("host", "warned"), [("0.0.0.0", True), ("127.0.0.1", False)])
def test_an_api_open_to_the_network_is_announced_with_a_warning(
    host: str, warned: bool, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings(None, {"daemon": {"host": host, "data_dir": str(tmp_path)}})

    with caplog.at_level(logging.INFO, logger="nova.daemon"):
        _announce(settings, example=False, elapsed_s=0.5)

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert bool(warnings) is warned
    if warned:
        assert "without authentication" in warnings[0]
        assert "--host 127.0.0.1" in warnings[0]
    assert any("nova ready in 0.50s" in r.getMessage() for r in caplog.records)
