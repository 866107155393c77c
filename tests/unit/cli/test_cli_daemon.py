"""`nova daemon`: the flags given become nested settings overrides for run_daemon()."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest

from nova.cli.exit_codes import ExitCode
from nova.core.errors import ConfigInvalid, DaemonStartFailed, StoreUnavailable

from .fakes import RunNova


class FakeDaemon:
    def __init__(self, raises: Exception | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.raises = raises

    def run_daemon(
        self, config_file: Path | None, overrides: dict[str, Any], deploy_example: bool
    ) -> None:
        self.calls.append(
            {"config_file": config_file, "overrides": overrides, "deploy_example": deploy_example}
        )
        if self.raises is not None:
            raise self.raises


def install(monkeypatch: pytest.MonkeyPatch, daemon: FakeDaemon) -> None:
    """nova.daemon is someone else's module: stand a fake one in for it."""
    module = types.ModuleType("nova.daemon")
    module.run_daemon = daemon.run_daemon  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "nova.daemon", module)


def test_no_flags_means_no_overrides(nova: RunNova, monkeypatch: pytest.MonkeyPatch) -> None:
    daemon = FakeDaemon()
    install(monkeypatch, daemon)

    result = nova("daemon")

    assert result.exit_code == ExitCode.OK, result.output
    assert daemon.calls == [{"config_file": None, "overrides": {}, "deploy_example": False}]


def test_every_flag_lands_in_its_settings_section(
    nova: RunNova, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    daemon = FakeDaemon()
    install(monkeypatch, daemon)
    config = tmp_path / "nova.yaml"
    config.write_text("daemon: {port: 9100}\n")

    result = nova(
        "daemon", "--host", "127.0.0.1", "--port", "9001", "--data-dir", str(tmp_path / "data"),
        "--config", str(config), "--database-url", "postgresql+asyncpg://db/nova",
        "--log-level", "debug", "--log-format", "json", "--shutdown-timeout", "5", "--example",
    )  # fmt: skip

    assert result.exit_code == ExitCode.OK, result.output
    assert daemon.calls == [
        {
            "config_file": config,
            "overrides": {
                "daemon": {
                    "host": "127.0.0.1",
                    "port": 9001,
                    "data_dir": tmp_path / "data",
                    "shutdown_timeout_s": 5.0,
                },
                "store": {"database_url": "postgresql+asyncpg://db/nova"},
                "logging": {"level": "debug", "format": "json"},
            },
            "deploy_example": True,
        }
    ]


def test_only_given_flags_are_sent(nova: RunNova, monkeypatch: pytest.MonkeyPatch) -> None:
    daemon = FakeDaemon()
    install(monkeypatch, daemon)

    nova("daemon", "--port", "9002", "--log-format", "json")

    assert daemon.calls[0]["overrides"] == {
        "daemon": {"port": 9002},
        "logging": {"format": "json"},
    }


def test_invalid_configuration_exits_usage(nova: RunNova, monkeypatch: pytest.MonkeyPatch) -> None:
    problem = "invalid configuration: pool.idle_ttl_s: Input should be greater than 0"
    install(monkeypatch, FakeDaemon(raises=ConfigInvalid(problem)))

    result = nova("daemon")

    assert result.exit_code == ExitCode.USAGE
    assert result.stderr == f"error: {problem}\n"


def test_a_daemon_that_cannot_start_exits_daemon_failed(
    nova: RunNova, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(monkeypatch, FakeDaemon(raises=DaemonStartFailed("the daemon did not start")))

    result = nova("daemon")

    assert result.exit_code == ExitCode.DAEMON_FAILED
    assert result.stderr == "error: the daemon did not start\n"


def test_a_nova_error_from_the_daemon_is_reported(
    nova: RunNova, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(monkeypatch, FakeDaemon(raises=StoreUnavailable("cannot open the database")))

    result = nova("daemon")

    assert result.exit_code == ExitCode.SERVER_ERROR
    assert result.stderr == "error: cannot open the database\n"


def test_a_missing_daemon_module_is_one_line(
    nova: RunNova, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "nova.daemon", None)  # makes the import fail

    result = nova("daemon")

    assert result.exit_code == ExitCode.DAEMON_FAILED
    assert result.stderr.startswith("error: cannot load the daemon:")
    assert len(result.stderr.splitlines()) == 1


def test_a_missing_config_file_is_a_usage_error(
    nova: RunNova, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    daemon = FakeDaemon()
    install(monkeypatch, daemon)

    result = nova("daemon", "--config", str(tmp_path / "missing.yaml"))

    assert result.exit_code == ExitCode.USAGE
    assert daemon.calls == []


def test_the_microvm_backend_can_be_the_default(
    nova: RunNova, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = FakeDaemon()
    install(monkeypatch, daemon)

    result = nova("daemon", "--backend", "microvm")

    assert result.exit_code == ExitCode.OK, result.output
    assert daemon.calls[0]["overrides"]["sandbox"]["backend"] == "microvm"
