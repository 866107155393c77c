"""The real `nova` exits with its documented codes where the daemon decides them."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from nova.cli.exit_codes import ExitCode
from tests.e2e.daemon_process import NOVA, DaemonProcess

SLEEPER = "import time\n\ndef handler(event, context):\n    time.sleep(event['s'])\n    return 1\n"


def run_daemon(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NOVA_SANDBOX__ALLOW_PROCESS_BACKEND": "true", "NOVA_BACKEND": "process"}
    return subprocess.run(
        [NOVA, "daemon", "--host", "127.0.0.1", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_a_daemon_whose_port_is_taken_exits_daemon_failed(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = run_daemon(tmp_path / "data", "--port", str(port))

    assert result.returncode == ExitCode.DAEMON_FAILED, result.stderr
    assert "address already in use" in result.stderr
    assert result.stderr.rstrip().endswith(
        "error: the daemon did not start; the log lines above say why"
    )


def test_a_daemon_with_an_invalid_config_file_exits_usage(tmp_path: Path) -> None:
    config = tmp_path / "nova.yaml"
    config.write_text("pool: {idle_ttl_s: -1}\n")

    result = run_daemon(tmp_path / "data", "--config", str(config))

    assert result.returncode == ExitCode.USAGE, result.stderr
    assert result.stderr.startswith("error: invalid configuration:")
    assert "idle_ttl_s" in result.stderr


def test_a_daemon_with_a_misspelt_config_key_exits_usage(tmp_path: Path) -> None:
    config = tmp_path / "nova.yaml"
    config.write_text("pool: {idle_ttl: 5}\n")  # idle_ttl_s: a typo must not be ignored

    result = run_daemon(tmp_path / "data", "--config", str(config))

    assert result.returncode == ExitCode.USAGE, result.stderr
    assert "idle_ttl" in result.stderr


def test_invoke_past_an_explicit_timeout_exits_timed_out(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    handler = tmp_path / "handler.py"
    handler.write_text(SLEEPER)
    created = daemon.cli(
        "fn", "create", "sleeper", "--runtime", "python", "--code-file", str(handler)
    )
    assert created.returncode == ExitCode.OK, created.stderr

    result = daemon.cli("--timeout", "1", "invoke", "sleeper", "--data", '{"s": 3}')

    assert result.returncode == ExitCode.TIMED_OUT, result.stderr
    assert result.stderr.splitlines()[0].startswith("error: no answer from")
