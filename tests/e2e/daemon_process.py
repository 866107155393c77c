"""Start and stop a real `nova daemon` subprocess for end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from nova.sandbox.base import BackendInfo

NOVA = str(Path(sys.executable).with_name("nova"))
TOOLCHAIN_CACHE = Path(tempfile.gettempdir()) / f"nova-test-toolchain-cache-{os.getuid()}"


# Daemons sharing a store share its keys: one created by the first is the others' admin key
# too (only the first writes it to its data dir). The pepper is shared for the same reason.
_STORE_ADMIN_KEYS: dict[str, str] = {}
TEST_PEPPER = "nova-e2e-tests-shared-pepper"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DaemonProcess:
    def __init__(
        self, data_dir: Path, env: dict[str, str] | None = None, args: list[str] | None = None
    ) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "NOVA_SANDBOX__ALLOW_PROCESS_BACKEND": "true",
            "NOVA_BACKEND": "process",
            # One toolchain cache for every test daemon: only the first Go build of a run (or
            # of this machine) compiles Go's standard library.
            "NOVA_COMPILE__CACHE_DIR": str(TOOLCHAIN_CACHE),
            "NOVA_AUTH_PEPPER": TEST_PEPPER,
            **(env or {}),
        }
        self.api_key: str | None = None  # the admin key, once the daemon started
        self.args = args or []
        self.log_path = data_dir.parent / f"daemon-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 20.0) -> DaemonProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    NOVA,
                    "daemon",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--data-dir",
                    str(self.data_dir),
                    *self.args,
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/health/startup", timeout=1).status_code == 200:
                    self.api_key = self._admin_key()
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"daemon did not start within {timeout_s}s:\n{self.log()}")

    def _admin_key(self) -> str | None:
        """The admin key this daemon wrote, or the one of the store it shares."""
        store = self.env.get("NOVA_DATABASE_URL", str(self.data_dir))
        key_file = self.data_dir / "admin-key"
        if key_file.exists():
            _STORE_ADMIN_KEYS[store] = key_file.read_text().strip()
        return _STORE_ADMIN_KEYS.get(store)

    @property
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def client(self, **kwargs: Any) -> httpx.Client:
        """An HTTP client of this daemon carrying its admin key."""
        headers = {**self.auth_headers, **kwargs.pop("headers", {})}
        return httpx.Client(base_url=self.url, timeout=60, headers=headers, **kwargs)

    @property
    def cli_env(self) -> dict[str, str]:
        """The environment of a `nova` CLI run against this daemon (with its admin key)."""
        key = {"NOVA_API_KEY": self.api_key} if self.api_key else {}
        return {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **key}

    def cli(self, *args: str, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run the real `nova` CLI against this daemon."""
        return subprocess.run(
            [NOVA, "--endpoint", self.url, *args],
            capture_output=True,
            text=True,
            input=input_text,
            timeout=60,
            env=self.cli_env,
            check=False,
        )


def skip_unless_available(info: BackendInfo) -> None:
    """Module-level guard for a backend's e2e tests: skip with the reason where it cannot run,
    except under CI=true, where the module's first test asserts availability and fails."""
    if not info.available and os.environ.get("CI") != "true":
        pytest.skip(f"{info.name} backend unavailable here: {info.reason}", allow_module_level=True)


@contextlib.contextmanager
def isolated_daemon_api(data_dir: Path, backend: str) -> Iterator[httpx.Client]:
    """A daemon without development mode (no process backend) on ``backend``, and a client."""
    env = {"NOVA_SANDBOX__ALLOW_PROCESS_BACKEND": "false", "NOVA_BACKEND": backend}
    daemon = DaemonProcess(data_dir, env=env).start()
    try:
        with daemon.client() as client:
            yield client
    finally:
        daemon.stop()
