"""What the daemon says when it is ready: the address, the first invoke (with the admin key),
a warning when authentication is off; and the refusal to expose an unauthenticated API."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from nova.config import load_settings
from nova.core.errors import ConfigInvalid
from nova.daemon.gates import check_exposure
from nova.daemon.lifecycle import announce, is_loopback_host


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


@pytest.mark.parametrize(("auth", "warned"), [(False, True), (True, False)])
def test_an_api_without_authentication_is_announced_with_a_warning(
    auth: bool, warned: bool, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings(
        None,
        {
            "daemon": {"host": "0.0.0.0", "data_dir": str(tmp_path), "insecure": True},
            "auth": {"enabled": auth},
        },
    )

    with caplog.at_level(logging.INFO, logger="nova.daemon"):
        announce(settings, example=True, elapsed_s=0.5)

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert bool(warnings) is warned
    if warned:
        assert "authentication is off" in warnings[0]
    assert any("nova ready in 0.50s" in r.getMessage() for r in caplog.records)
    hint = next(r.getMessage() for r in caplog.records if "try it" in r.getMessage())
    assert ("Authorization: Bearer $(cat" in hint) is auth


@pytest.mark.parametrize(
    ("host", "auth", "insecure", "refused"),
    [
        ("0.0.0.0", False, False, True),
        ("0.0.0.0", False, True, False),
        ("127.0.0.1", False, False, False),
        ("0.0.0.0", True, False, False),
    ],
)
def test_a_daemon_without_authentication_stays_on_loopback(
    host: str, auth: bool, insecure: bool, refused: bool
) -> None:
    settings = load_settings(
        None, {"daemon": {"host": host, "insecure": insecure}, "auth": {"enabled": auth}}
    )
    if refused:
        with pytest.raises(ConfigInvalid, match="--insecure"):
            check_exposure(settings)
    else:
        check_exposure(settings)
