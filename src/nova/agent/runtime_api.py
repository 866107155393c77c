"""The AWS Lambda Runtime API, served on the instance's loopback for a ``provided`` bootstrap.

A custom runtime's ``bootstrap`` speaks HTTP to ``$AWS_LAMBDA_RUNTIME_API`` (AWS's 2018-06-01
interface); the agent serves it and keeps speaking Nova's frame protocol to the host, so the
daemon, the pool and every sandbox backend stay unaware of custom runtimes. Paths, under any of
the prefixes ``/2018-06-01/runtime``, ``/runtime/v1`` and ``/runtime``::

    GET  /invocation/next              blocks until an event; 200 + event body + headers
    POST /invocation/{id}/response     202; 400 unknown id; 403 wrong state; 413 too large
    POST /invocation/{id}/error        202; 400; 403
    POST /init/error                   202; 403 once initialised

Errors answer ``{"errorMessage", "errorType"}`` as AWS's runtime interface emulator does; a 500
means the runtime is shutting down and the bootstrap should exit.

This module knows HTTP only; the state machine behind it is :class:`RuntimeApiBackend`
(provided.py). Loaded only for ``provided`` functions: http.server costs start-up time.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:  # typing is only needed by the type checker; importing it costs start-up time
    from typing import Protocol

    class RuntimeApiBackend(Protocol):
        def next_event(self) -> tuple[bytes, dict[str, str]]:
            """Block until an event is due; (body, headers), or raise ApiRefusal (e.g. 500)."""
            ...

        def post_response(self, request_id: str, body: bytes) -> None: ...

        def post_error(self, request_id: str, body: bytes, error_type: str | None) -> None: ...

        def post_init_error(self, body: bytes, error_type: str | None) -> None: ...


_PATH = re.compile(
    r"^(?:/2018-06-01/runtime|/runtime/v1|/runtime)"
    r"/(?:(invocation/next)|invocation/([^/]+)/(response|error)|(init/error))/?$"
)
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"


class ApiRefusal(Exception):
    """A request the Runtime API answers with an error status and AWS's error body."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


class RuntimeApiServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 (an ephemeral port) for one runtime instance."""

    def __init__(self, backend: RuntimeApiBackend, max_body_bytes: int) -> None:
        handler = type("Handler", (_Handler,), {"backend": backend, "max_body": max_body_bytes})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True  # a bootstrap blocked in /next never holds up exit
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        """``host:port``, the value of AWS_LAMBDA_RUNTIME_API."""
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.2,), name="nova-runtime-api", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5.0)
        self._server.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the runtime clients reuse one connection
    # Small answers on a kept-alive connection: without this, Nagle holds a reply until the
    # client's delayed ACK (~40 ms per call, measured with the C bootstrap).
    disable_nagle_algorithm = True
    backend: RuntimeApiBackend
    max_body: int

    def log_message(self, format: str, *args: object) -> None:
        return  # the agent's stderr is for its own diagnostics, not an access log

    def do_GET(self) -> None:
        match = _PATH.match(self.path.split("?", 1)[0])
        if match is None or not match.group(1):
            self._refuse(self._unknown(match is not None))
            return
        try:
            body, headers = self.backend.next_event()
        except ApiRefusal as refusal:
            self._refuse(refusal)
            return
        self._send(200, body, headers)

    def do_POST(self) -> None:
        match = _PATH.match(self.path.split("?", 1)[0])
        if match is None or match.group(1):
            self._discard_body()
            self._refuse(self._unknown(match is not None))
            return
        try:
            body = self._read_body()
            error_type = self.headers.get(ERROR_TYPE_HEADER)
            if match.group(4):
                self.backend.post_init_error(body, error_type)
            elif match.group(3) == "response":
                self.backend.post_response(match.group(2), body)
            else:
                self.backend.post_error(match.group(2), body, error_type)
        except ApiRefusal as refusal:
            self._refuse(refusal)
            return
        self._send(202, b'{"status":"OK"}\n', {})

    @staticmethod
    def _unknown(path_known: bool) -> ApiRefusal:
        if path_known:
            return ApiRefusal(405, "MethodNotAllowed", "this method is not allowed on this path")
        return ApiRefusal(404, "NotFound", "no such Runtime API path")

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if length > self.max_body:
            self.close_connection = True  # the body stays unread: the stream cannot go on
            raise ApiRefusal(
                413,
                "RequestEntityTooLarge",
                f"the body is {length} bytes, over the {self.max_body}-byte limit",
            )
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            length = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if length == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            size += length
            if size > self.max_body:
                self.close_connection = True
                raise ApiRefusal(
                    413, "RequestEntityTooLarge", f"the body is over {self.max_body} bytes"
                )
            chunks.append(self.rfile.read(length))
            self.rfile.readline()

    def _discard_body(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if 0 < length <= self.max_body:
            self.rfile.read(length)
        elif length:
            self.close_connection = True

    def _refuse(self, refusal: ApiRefusal) -> None:
        body = json.dumps({"errorMessage": refusal.message, "errorType": refusal.error_type})
        self._send(refusal.status, body.encode() + b"\n", {})

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        """Status line, headers and body in one write (one segment for small answers)."""
        reason = self.responses.get(status, ("",))[0]
        lines = [
            f"HTTP/1.1 {status} {reason}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        if self.close_connection:
            lines.append("Connection: close")
        head = "\r\n".join(lines).encode("latin-1", "replace") + b"\r\n\r\n"
        self.wfile.write(head + body)
