"""Nova's Python worker: runs user handlers inside the function's own interpreter.

Started by the Nova agent; never imports nova (it runs on the user's sys.path and interpreter,
which may be any Python >= 3.8).

    persistent:  python_bootstrap.py --handler MOD.FN --resp-fd N
        fd 0 carries one JSON request line per invocation; the bootstrap moves it to a private
        fd and puts /dev/null on 0. fds 1 and 2 are append-only capture files shared with the
        agent: after each call their tails become "stdout"/"stderr" and they are truncated.
        The first line on fd N is {"ready":true} (the handler import was attempted); then one
        result line per request: {"id","output","error","stdout","stderr"}.
    process:     python_bootstrap.py --handler MOD.FN --resp-fd N --once FILE
        runs the request in FILE, writes {"id","output","error"} to fd N and exits; stdout and
        stderr are pipes the agent reads.
    direct:      python_bootstrap.py --handler MOD.FN --resp-fd N --lane-fd L --state-fd S
                 --max-message-bytes M
        persistent, but the worker itself reads Exec and Ping frames from the host connection
        (fd L) and writes their Resp frames, so a warm call skips the agent (see
        nova/agent/direct.py). It writes the ready line on fd N, then keeps its phase and the
        running call's frame id in the shared file S; any other frame (or EOF) it writes into S
        and exits, handing the connection back to the agent.

User failures are results, never crashes: import errors, a missing handler and unserialisable
return values are reported per invocation and the worker stays alive.
"""

from __future__ import annotations

import faulthandler
import io
import json
import os
import signal
import struct
import sys
import time
import types

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any, BinaryIO, NoReturn

CAPTURE_LIMIT = 64 * 1024  # keep in step with nova/agent/capture.py
TRUNCATION_MARK = "[nova: %d earlier bytes truncated]\n"
IMPORT_MODULE_ERROR = "Runtime.ImportModuleError"  # keep in step with nova/agent/errors.py
HANDLER_NOT_FOUND = "Runtime.HandlerNotFound"
SERIALIZATION_ERROR = "Runtime.SerializationError"

_BOOTSTRAP_FILES = {__file__, os.path.abspath(__file__)}
_dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


def _error(kind: str, message: str, stack: list[str] | None = None) -> dict[str, Any]:
    return {"type": kind, "message": message, "stack": stack or []}


def _user_stack(exc: BaseException) -> list[str]:
    """The traceback without the bootstrap's, importlib's or asyncio's own frames."""
    import traceback

    hidden = set(_BOOTSTRAP_FILES)
    asyncio_file = getattr(sys.modules.get("asyncio"), "__file__", None)
    asyncio_dir = os.path.dirname(asyncio_file) + os.sep if asyncio_file else None
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if frame.filename not in hidden
        and not frame.filename.startswith("<frozen ")
        and not (asyncio_dir and frame.filename.startswith(asyncio_dir))
    ]
    return [entry.rstrip("\n") for entry in traceback.format_list(frames)]


class Context:
    """What a handler's ``context`` argument offers (the AWS Lambda names)."""

    __slots__ = (
        "_deadline_ms",
        "aws_request_id",
        "client_context",
        "function_name",
        "function_version",
        "identity",
        "invoked_function_arn",
        "log_group_name",
        "log_stream_name",
        "memory_limit_in_mb",
        "request_id",
    )

    def __init__(
        self,
        request_id: Any,
        deadline_ms: float,
        static: tuple[str, str, int],
        client_context: Any = None,
    ) -> None:
        self.request_id = self.aws_request_id = request_id
        self.function_name, self.function_version, self.memory_limit_in_mb = static
        self.invoked_function_arn = "arn:nova:function:" + self.function_name
        self.log_group_name = "/aws/lambda/" + self.function_name
        self.log_stream_name = f"nova/{self.function_version}/{os.getpid()}"
        self.client_context = ClientContext(client_context) if client_context else None
        self.identity = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int(self._deadline_ms - time.time() * 1000))


class ClientContext:
    """Lambda's ``context.client_context``: what the caller sent as X-Amz-Client-Context."""

    __slots__ = ("client", "custom", "env")

    def __init__(self, text: str) -> None:
        try:
            document = json.loads(text)
        except ValueError:
            document = {}
        if not isinstance(document, dict):
            document = {}
        self.client = document.get("client")
        self.custom = document.get("custom")
        self.env = document.get("env")


class Handler:
    def __init__(self, spec: str) -> None:
        module, _, name = spec.rpartition(".")
        self.module_name = module.replace("/", ".")
        self.name = name
        self.function: Any = None
        self.load_error: dict[str, Any] | None = None  # reported by the next invocation
        env = os.environ
        self.static = (
            env.get("NOVA_FUNCTION_NAME", ""),
            env.get("NOVA_FUNCTION_VERSION", ""),
            int(env.get("NOVA_MEMORY_LIMIT_MB") or 0),
        )
        self.default_timeout_ms = float(env.get("NOVA_TIMEOUT_S") or 30) * 1000

    def load(self) -> None:
        import importlib

        try:
            module = importlib.import_module(self.module_name)
        except Exception as exc:  # any import failure is the user's, reported as data
            detail = str(exc) if isinstance(exc, ImportError) else f"{type(exc).__name__}: {exc}"
            message = f"Unable to import module '{self.module_name}': {detail}"
            self.load_error = _error(IMPORT_MODULE_ERROR, message, _user_stack(exc))
            return
        function = getattr(module, self.name, None)
        if not callable(function):
            message = f"Handler '{self.name}' missing on module '{self.module_name}'"
            self.load_error = _error(HANDLER_NOT_FOUND, message)
            return
        self.function = function

    def invoke(self, request: dict[str, Any]) -> tuple[bytes | None, dict[str, Any] | None]:
        """(output JSON bytes, None) or (None, error object)."""
        if self.function is None:
            if self.load_error is None:
                self.load()
            error, self.load_error = self.load_error, None
            if error is not None:
                return None, error
        deadline_ms = request.get("deadline_ms") or time.time() * 1000 + self.default_timeout_ms
        context = Context(
            _request_id(request), deadline_ms, self.static, request.get("client_context")
        )
        try:
            result = self.function(request.get("event"), context)
            if isinstance(result, types.CoroutineType):
                import asyncio

                result = asyncio.run(result)
        except Exception as exc:  # the user's exception, reported as data
            return None, _error(type(exc).__name__, str(exc), _user_stack(exc))
        try:
            return _dumps(result).encode(), None
        except (TypeError, ValueError, RecursionError) as exc:
            return None, _error(SERIALIZATION_ERROR, f"Unable to marshal response: {exc}")


def _request_id(request: dict[str, Any]) -> Any:
    """The invocation's id as the function sees it; ``id`` only matches the reply."""
    return request.get("request_id", request.get("id"))


def _amzn_trace_id(trace_parent: str) -> str | None:
    """The traceparent in Lambda's X-Ray header form (nova.agent.environment.amzn_trace_id)."""
    parts = trace_parent.split("-")
    if [len(part) for part in parts] != [2, 32, 16, 2]:
        return None
    try:
        sampled = int(parts[3], 16) & 1
        int(parts[0], 16), int(parts[1], 16), int(parts[2], 16)
    except ValueError:
        return None
    trace_id = parts[1]
    return f"Root=1-{trace_id[:8]}-{trace_id[8:]};Parent={parts[2]};Sampled={sampled}"


def _text(value: Any) -> bytes:
    return _dumps(value).encode("utf-8", "replace")


def _result_line(
    request: dict[str, Any],
    output: bytes | None,
    error: dict[str, Any] | None,
    captures: tuple[str, str] | None = None,
) -> bytes:
    parts = [b'{"id":', _text(request.get("id")), b',"output":', output or b"null"]
    parts += [b',"error":', b"null" if error is None else _text(error)]
    if captures is not None:
        parts += [b',"stdout":', _text(captures[0]), b',"stderr":', _text(captures[1])]
    parts.append(b"}\n")
    return b"".join(parts)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass  # a stream the user closed or broke has nothing left to capture


def _drain_capture(fd: int) -> str:
    """The tail of what this invocation wrote to fd (a capture file), which is then emptied."""
    try:
        size = os.fstat(fd).st_size
        if not size:
            return ""
        keep = min(size, CAPTURE_LIMIT)
        data = os.pread(fd, keep, size - keep)
        os.ftruncate(fd, 0)
    except OSError as exc:  # the user replaced or closed fd 1/2
        return f"[nova: output not captured: {exc}]"
    text = data.decode("utf-8", "replace")
    return TRUNCATION_MARK % (size - keep) + text if size > keep else text


def _apply_env(env: dict[str, str], previous: tuple[str, ...]) -> tuple[str, ...]:
    environ = os.environ
    for key in previous:
        if key not in env:
            environ.pop(key, None)
    environ.update(env)
    return tuple(env)


def _stdin_from_devnull() -> None:
    """User code must not read the worker's fd 0 (the relayed mode's request pipe)."""
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)


def serve(handler: Handler, resp_fd: int) -> None:
    requests: BinaryIO = os.fdopen(os.dup(0), "rb")
    _stdin_from_devnull()
    _write_all(resp_fd, b'{"ready":true}\n')
    per_call_keys: tuple[str, ...] = ()
    for line in requests:
        request = json.loads(line)
        per_call_keys = _apply_env(request.get("env") or {}, per_call_keys)
        output, error = handler.invoke(request)
        _flush_std()
        captures = (_drain_capture(1), _drain_capture(2))
        _write_all(resp_fd, _result_line(request, output, error, captures))


# Direct mode. Keep these in step with nova/agent/direct.py and nova/agent/protocol.py.
PHASE_IDLE, PHASE_READING, PHASE_RUNNING, PHASE_REPLYING, PHASE_HANDBACK = 0, 1, 2, 3, 4
STATE_HEADER = struct.Struct("<BxxxId")  # phase, length of what follows, monotonic start time
STATE_ROOM = 1024  # the state head plus the running call's frame id (JSON); handbacks after it
MSG_EXEC, MSG_RESP, MSG_PING = 2, 3, 4
RESPONSE_TOO_LARGE = "Runtime.ResponseTooLarge"
FRAME_HEADER = struct.Struct(">I")


class DirectLane:
    """Serve Exec and Ping frames straight from the host connection (one worker, no agent hop).

    The phase in the shared state file tells the agent, after this process ended, whether the
    stream is still at a frame boundary (idle, running, handed back) and which request was
    running. Frames are read exactly (header, then body) so nothing is ever read ahead.
    """

    def __init__(self, lane_fd: int, state_fd: int, max_message_bytes: int) -> None:
        import mmap

        for fd in (lane_fd, state_fd):
            os.set_inheritable(fd, False)  # user subprocesses must not hold the connection
        self.fd = lane_fd
        self.state_fd = state_fd
        self.max = max_message_bytes
        self.state = mmap.mmap(state_fd, STATE_ROOM)

    def serve(self, handler: Handler, resp_fd: int) -> None:
        _stdin_from_devnull()
        _write_all(resp_fd, b'{"ready":true}\n')
        os.close(resp_fd)
        per_call_keys: tuple[str, ...] = ()
        while True:
            header = self._read_exactly(FRAME_HEADER.size)
            if len(header) < FRAME_HEADER.size:
                self._hand_back(header)  # EOF: the agent ends the instance
            (length,) = FRAME_HEADER.unpack(header)
            if length > self.max:
                self._hand_back(header)  # the agent refuses it and closes the connection
            self.state[0] = PHASE_READING
            body = self._read_exactly(length)
            request = _parse_request(body) if len(body) == length else None
            frame_id = _text(request.get("id")) if request is not None else b""
            if request is None or len(frame_id) > STATE_ROOM - STATE_HEADER.size:
                self._hand_back(header + body)  # the agent answers what this worker cannot
            elif request["type"] == MSG_PING:
                self._reply(frame_id, b',"ok":true')
            else:
                per_call_keys = self._exec(handler, request, frame_id, per_call_keys)

    def _exec(
        self,
        handler: Handler,
        request: dict[str, Any],
        frame_id: bytes,
        per_call_keys: tuple[str, ...],
    ) -> tuple[str, ...]:
        started = time.monotonic()
        state = self.state
        state[STATE_HEADER.size : STATE_HEADER.size + len(frame_id)] = frame_id
        STATE_HEADER.pack_into(state, 0, PHASE_RUNNING, len(frame_id), started)
        request_id = _request_id(request)
        env = {"NOVA_REQUEST_ID": "" if request_id is None else str(request_id)}
        trace_parent = request.get("trace_parent")
        if trace_parent is not None:
            env["NOVA_TRACE_PARENT"] = trace_parent
            amzn = _amzn_trace_id(trace_parent)
            if amzn is not None:
                env["_X_AMZN_TRACE_ID"] = amzn
        per_call_keys = _apply_env(env, per_call_keys)
        deadline_ms = request.get("deadline_ms") or time.time() * 1000 + handler.default_timeout_ms
        # Past the deadline the kernel ends this process (SIGALRM's default action), wherever
        # the handler is stuck; the agent reports Function.Timeout.
        signal.setitimer(signal.ITIMER_REAL, max(0.001, deadline_ms / 1000 - time.time()))
        output, error = handler.invoke(request)
        signal.setitimer(signal.ITIMER_REAL, 0)
        _flush_std()
        stdout, stderr = _text(_drain_capture(1)), _text(_drain_capture(2))
        duration = b',"ok":true,"duration_ms":%.3f' % ((time.monotonic() - started) * 1000)
        fields = [duration, b',"output":', output or b"null", b',"error":']
        fields += [b"null" if error is None else _text(error), b',"stdout":', stdout]
        fields += [b',"stderr":', stderr]
        size = len(b'{"type":3,"id":}') + len(frame_id) + sum(map(len, fields))
        if size > self.max:
            message = (
                f"the function's response ({size} bytes with its output) exceeds the "
                f"{self.max}-byte message limit"
            )
            fields[2] = b"null"
            fields[4] = _text(_error(RESPONSE_TOO_LARGE, message))
        self._reply(frame_id, b"".join(fields))
        return per_call_keys

    def _reply(self, frame_id: bytes, fields: bytes) -> None:
        body = b'{"type":%d,"id":%s%s}' % (MSG_RESP, frame_id, fields)
        self.state[0] = PHASE_REPLYING
        _write_all(self.fd, _frame(body))
        self.state[0] = PHASE_IDLE

    def _read_exactly(self, size: int) -> bytes:
        """``size`` bytes, or fewer at EOF."""
        data = os.read(self.fd, size) if size else b""
        if len(data) == size or not data:
            return data
        parts = [data]
        remaining = size - len(data)
        while remaining:
            chunk = os.read(self.fd, remaining)
            if not chunk:
                break
            parts.append(chunk)
            remaining -= len(chunk)
        return b"".join(parts)

    def _hand_back(self, consumed: bytes) -> NoReturn:
        """Give the connection back to the agent with the bytes read but not served; exit."""
        os.ftruncate(self.state_fd, STATE_ROOM + len(consumed))
        os.pwrite(self.state_fd, consumed, STATE_ROOM)
        STATE_HEADER.pack_into(self.state, 0, PHASE_HANDBACK, len(consumed), 0.0)
        _flush_std()
        os._exit(0)  # do not wait for threads the handler left behind


def _frame(body: bytes) -> bytes:
    return FRAME_HEADER.pack(len(body)) + body


def _parse_request(body: bytes) -> dict[str, Any] | None:
    """An Exec or Ping this worker can serve, else None (the agent answers it)."""
    try:
        request = json.loads(body)
    except ValueError:
        return None
    if not isinstance(request, dict) or request.get("type") not in (MSG_EXEC, MSG_PING):
        return None
    if request["type"] == MSG_EXEC:
        deadline = request.get("deadline_ms")
        trace_parent = request.get("trace_parent")
        if deadline is not None and (
            isinstance(deadline, bool) or not isinstance(deadline, (int, float))
        ):
            return None
        if trace_parent is not None and not isinstance(trace_parent, str):
            return None
    return request


def run_once(handler: Handler, path: str, resp_fd: int) -> None:
    with open(path, "rb") as file:
        request = json.loads(file.read())
    _apply_env(request.get("env") or {}, ())
    output, error = handler.invoke(request)
    _flush_std()
    _write_all(resp_fd, _result_line(request, output, error))
    os._exit(0)  # do not wait for threads the handler left behind


def _isolate_imports(code_dir: str) -> None:
    """Let the function import its own code and the standard library, nothing else.

    The worker runs with -S (a forked one inherits the agent's), so no site-packages or
    dist-packages (the host's, a venv's, the user's) were added and no .pth file ran; this
    drops what else is on sys.path (this script's directory, PYTHONPATH) and puts the code
    directory first. What a function needs beyond the standard library ships in its code.
    """
    stdlib = os.path.dirname(os.__file__)
    library = {
        stdlib,
        os.path.join(stdlib, "lib-dynload"),
        os.path.join(os.path.dirname(stdlib), "python{}{}.zip".format(*sys.version_info)),
    }
    kept: list[str] = []
    for entry in sys.path:
        if entry in library and entry not in kept:
            kept.append(entry)
    sys.path[:] = [code_dir, *kept]
    import site  # under -S the import only defines site's helpers: exit(), help() and co.

    site.setquit()
    site.setcopyright()
    site.sethelper()


def _parse_args(argv: list[str]) -> dict[str, str]:
    options: dict[str, str] = {}
    while len(argv) >= 2 and argv[0].startswith("--"):
        options[argv[0][2:]] = argv[1]
        argv = argv[2:]
    if argv or "handler" not in options or "resp-fd" not in options:
        sys.exit(
            "usage: python_bootstrap.py --handler MOD.FN --resp-fd N [--once FILE | "
            "--lane-fd L --state-fd S --max-message-bytes M]"
        )
    return options


def main() -> None:
    options = _parse_args(sys.argv[1:])
    resp_fd = int(options["resp-fd"])
    os.set_inheritable(resp_fd, False)  # user subprocesses must not hold the result pipe
    _isolate_imports(os.environ.get("NOVA_CODE_DIR") or os.getcwd())
    sys.argv = [sys.argv[0]]
    faulthandler.enable()  # a segfault in user code leaves its stack in the stderr capture
    # Line-buffered like a terminal: prints interleave with C-level writes in order and are
    # not lost when user code kills its own process.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(line_buffering=True)
    handler = Handler(options["handler"])
    handler.load()
    if "once" in options:
        run_once(handler, options["once"], resp_fd)
    elif "lane-fd" in options:
        lane = DirectLane(
            int(options["lane-fd"]), int(options["state-fd"]), int(options["max-message-bytes"])
        )
        lane.serve(handler, resp_fd)
    else:
        serve(handler, resp_fd)


if __name__ == "__main__":
    main()
