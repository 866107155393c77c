"""Measuring clients: a minimal keep-alive HTTP/1.1 client (so client overhead stays small and
equal for Nova and the baseline) and a wrk wrapper for throughput."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


class KeepAliveClient:
    def __init__(self, port: int, headers: dict[str, str] | None = None) -> None:
        self._extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        self._sock = socket.create_connection(("127.0.0.1", port))
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = b""

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        request = (
            f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            f"{self._extra}Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        self._sock.sendall(request)
        while b"\r\n\r\n" not in self._buffer:
            self._buffer += self._recv()
        head, _, rest = self._buffer.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        while len(rest) < length:
            rest += self._recv()
        self._buffer = rest[length:]
        return status, rest[:length]

    def _recv(self) -> bytes:
        chunk = self._sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        return chunk

    def close(self) -> None:
        self._sock.close()


def sequential_latencies_ms(
    port: int,
    path: str,
    body: bytes,
    count: int,
    warmup: int,
    headers: dict[str, str] | None = None,
) -> list[float]:
    client = KeepAliveClient(port, headers)
    try:
        for _ in range(warmup):
            client.post(path, body)
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            status, _ = client.post(path, body)
            samples.append((time.perf_counter() - started) * 1000)
            if status != 200:
                raise RuntimeError(f"{path} answered {status}")
        return samples
    finally:
        client.close()


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def wrk_requests_per_second(
    port: int,
    path: str,
    body: bytes,
    connections: int,
    seconds: int,
    headers: dict[str, str] | None = None,
) -> float:
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    extra = "".join(
        f'wrk.headers["{name}"] = "{value}"\n' for name, value in (headers or {}).items()
    )
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"{extra}wrk.body = [[{body.decode()}]]\n"  # a Lua long string: no JSON quoting needed
    )
    try:
        output = subprocess.run(
            [
                "wrk",
                "-t",
                "2",
                "-c",
                str(connections),
                "-d",
                f"{seconds}s",
                "-s",
                str(script),
                f"http://127.0.0.1:{port}{path}",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 30,
        ).stdout
    finally:
        script.unlink()
    if "Non-2xx" in output:
        raise RuntimeError(f"wrk saw errors:\n{output}")
    return float(
        next(line.split()[1] for line in output.splitlines() if line.startswith("Requests/sec"))
    )
