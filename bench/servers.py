"""Starting the servers under test as subprocesses on free ports."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout_s}s")


def start_bare_uvicorn(app: str = "bench.bare_app:app") -> tuple[subprocess.Popen[bytes], int]:
    """A baseline ASGI app (``module:attribute``) on the loop and parser Nova uses."""
    port = free_port()
    process = subprocess.Popen(
        [
            str(VENV_BIN / "uvicorn"),
            app,
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=Path(__file__).resolve().parent.parent,
    )
    wait_http(f"http://127.0.0.1:{port}/", process)
    return process, port


def start_nova(
    data_dir: Path, backend: str, extra_env: dict[str, str] | None = None, *, auth: bool = False
) -> tuple[subprocess.Popen[bytes], int]:
    """A daemon on 127.0.0.1; without ``auth`` its API needs no key (the benches measure the
    platform; ab.py and hotpath.py measure authentication on its own)."""
    port = free_port()
    env = {
        **os.environ,
        "NOVA_AUTH__ENABLED": "true" if auth else "false",
        **(extra_env or {}),
        "NOVA_BACKEND": backend,
        "NOVA_SANDBOX__ALLOW_PROCESS_BACKEND": "true",
        "NOVA_LOG_LEVEL": "warning",
    }
    process = subprocess.Popen(
        [
            str(VENV_BIN / "nova"),
            "daemon",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
        ],
        env=env,
    )
    wait_http(f"http://127.0.0.1:{port}/health/live", process)
    return process, port


def admin_headers(data_dir: Path) -> dict[str, str]:
    """The admin key a daemon wrote to its data dir as a header (none: auth is off, or a tree
    from before API keys)."""
    key_file = data_dir / "admin-key"
    return {"Authorization": f"Bearer {key_file.read_text().strip()}"} if key_file.exists() else {}


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
