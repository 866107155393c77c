"""The app as a whole: help, version, and that `nova --help` stays light."""

from __future__ import annotations

import subprocess
import sys

from nova.cli.exit_codes import ExitCode

from .fakes import RunNova


def test_help_lists_every_command(nova: RunNova) -> None:
    result = nova("--help")

    assert result.exit_code == ExitCode.OK
    for command in ("daemon", "fn", "invoke", "logs", "runtimes", "health"):
        assert command in result.stdout


def test_fn_help_lists_its_subcommands(nova: RunNova) -> None:
    result = nova("fn", "--help")

    for command in ("create", "list", "get", "update", "delete"):
        assert command in result.stdout


def test_version(nova: RunNova) -> None:
    result = nova("--version")

    assert result.exit_code == ExitCode.OK
    assert result.stdout.startswith("nova ")


def test_importing_the_cli_loads_neither_httpx_nor_rich() -> None:
    probe = (
        "import sys, nova.cli.main; "
        "print(sorted(m for m in ('httpx', 'rich', 'nova.cli.client') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout

    assert out.strip() == "[]"
