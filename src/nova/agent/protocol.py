"""Host <-> agent wire protocol (version 1). Stdlib only.

Every message is one frame::

    +----------------------+-------------------------------+
    | length: uint32, BE   | body: UTF-8 JSON object       |
    +----------------------+-------------------------------+
      4 bytes                length bytes (<= max_message_bytes)

The body is an object with an integer ``type`` (:class:`MsgType`) and an ``id`` that the reply
echoes, so several requests may be in flight on one connection (instance_concurrency > 1).
The length is checked against the limit *before* the body is read, so a hostile or broken peer
cannot make the reader allocate more than the limit.

Host -> agent:
  Init   {type, id, protocol, runtime, handler, mode, code_dir, env, function_name,
          function_version, memory_mb, timeout_s, concurrency,
          interpreter?, tmp_dir?, init_timeout_s?}               # ? = optional
  Exec   {type, id, event, deadline_ms, trace_parent, request_id?}   # event: any JSON value;
         # client_context? (a JSON text, Lambda's ClientContext) and cognito_identity? reach
         # the function's context (custom runtimes: the Runtime API headers);
         # request_id is the invocation's id as the function sees it (context, NOVA_REQUEST_ID),
         # id only matches the reply: the host keeps ids unique per connection, request ids
         # need not be. Without request_id the function sees id.
  Ping   {type, id}
  Drain  {type, id}             # let running invocations finish, stop the workers, start
                                # none until Reload; Exec is refused meanwhile
  Reload {type, id, code_hash}  # start workers on what code_dir holds now (stopping running
                                # ones first, as Drain does, if no Drain came before)
  Stop   {type, id}
  Resume {type, id, time_ns, seed}  # after a VM snapshot was restored: set the clock to
                                # time_ns (epoch ns), mix seed (hex) into the kernel's RNG and
                                # reseed it, restart the workers (their RNG state is shared
                                # with every other restore of the snapshot)
Agent -> host (always Resp):
  Resp   {type, id, ok, ...}
    to Init:   {protocol, agent_version, pid, init_ms}   # workers started and ready
    to Exec:   {output, error: null | {type, message, stack}, stdout, stderr, duration_ms}
    to Ping:   {}
    to Drain:  {}                                        # no worker of the old code runs
    to Reload: {code_hash}                               # workers started and ready
    to Stop:   {}
    to Resume: {}                                        # clock set, RNG reseeded
    on a request the agent cannot serve: ok=false, error={type, message, stack: []}

A hot reload is Drain, then the host replaces the files in code_dir (the agent cannot: the
sandboxes mount it read-only), then Reload: no worker runs while the files change. code_hash
only names the version for the reply.

With one Python worker (direct mode, direct.py) the worker reads the frames itself, in order:
a Stop then waits for the running invocation instead of interrupting it.
"""

from __future__ import annotations

import json
import struct
from enum import IntEnum

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:  # typing is only needed by the type checker; importing it costs start-up time
    from collections.abc import Mapping
    from typing import Any, Protocol

    from nova.core.models import FunctionConfig

    class Readable(Protocol):
        def read(self, size: int, /) -> bytes: ...

    class InitSource(Protocol):
        """What :func:`init_message` reads of the function it starts (the pool's Deployment)."""

        @property
        def config(self) -> FunctionConfig: ...
        @property
        def version(self) -> str: ...
        @property
        def interpreter(self) -> str: ...
        @property
        def agent_runtime(self) -> str | None: ...


PROTOCOL_VERSION = 1
DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024
HEADER = struct.Struct(">I")


class MsgType(IntEnum):
    INIT = 1
    EXEC = 2
    RESP = 3
    PING = 4
    STOP = 5
    RELOAD = 6
    DRAIN = 7
    RESUME = 8
    TEMPLATE = 9  # to a function template (template.py), instead of Init
    PRESTART = 10  # before Init: start a runtime worker that no function is loaded in yet


class ProtocolError(Exception):
    """The peer sent something that is not a valid frame."""


class MessageTooLarge(ProtocolError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"message of {size} bytes exceeds the {limit}-byte limit")
        self.size = size
        self.limit = limit


def init_message(
    deployment: InitSource, code_dir: str, tmp_dir: str, env: Mapping[str, str]
) -> dict[str, Any]:
    """The Init frame (without ``id``, which the connection assigns) for one instance.

    ``code_dir`` and ``tmp_dir`` are the paths as the agent sees them inside its sandbox, and
    ``env`` is the function's environment as the instance gets it, which may differ from the
    configured one (values resolved at start), so the caller passes it in.
    """
    config = deployment.config
    return {
        "type": MsgType.INIT,
        "protocol": PROTOCOL_VERSION,
        "runtime": deployment.agent_runtime or config.runtime,
        "handler": config.handler,
        "mode": config.mode.value,
        "code_dir": code_dir,
        "tmp_dir": tmp_dir,
        "interpreter": deployment.interpreter,
        "env": dict(env),
        "function_name": config.name,
        "function_version": deployment.version,
        "memory_mb": config.memory_mb,
        "timeout_s": config.timeout_s,
        "concurrency": config.instance_concurrency,
    }


def template_message(init: Mapping[str, Any], seccomp: bytes, tmp_bytes: int) -> dict[str, Any]:
    """The frame that makes a template agent (agent/template.py) import a function: the Init
    frame its instances will have, the seccomp program each of them applies to itself and the
    size of the /tmp each mounts."""
    return {
        "type": MsgType.TEMPLATE,
        "init": dict(init),
        "seccomp": seccomp.hex(),
        "tmp_bytes": tmp_bytes,
    }


def encode_frame(body: bytes, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> bytes:
    """Prefix an already-encoded JSON body with its length."""
    if len(body) > max_message_bytes:
        raise MessageTooLarge(len(body), max_message_bytes)
    return HEADER.pack(len(body)) + body


def encode_message(
    message: dict[str, Any], max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> bytes:
    text = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
    try:
        body = text.encode()
    except UnicodeEncodeError:
        # A lone surrogate (e.g. from a "\ud800" escape in user JSON) has no UTF-8 form, and
        # strict peers reject it even escaped; U+FFFD keeps the frame valid JSON for everyone.
        body = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode()
    return encode_frame(body, max_message_bytes)


_EXEC_PREFIX = b'{"type":%d,"id":' % MsgType.EXEC


def exec_body(
    frame_id: str,
    request_id: str,
    deadline_ms: int,
    trace_parent: str | None,
    event: bytes,
    client_context: str | None = None,
) -> bytes:
    """The Exec frame's body (see the module docstring) with ``event``'s bytes spliced in
    unparsed: the caller guarantees they are one valid JSON value. ``frame_id`` matches the
    reply (unique on the connection); ``request_id`` is what the function sees, and two calls
    may share it (it comes from the client's X-Nova-Request-Id).

    Only the host builds Exec frames, so orjson (a host dependency, absent in sandboxes) is
    imported here rather than at the top: the agent, which imports this module, never pays for
    it, and after the first call the import is a dictionary lookup (``import orjson``, not
    ``from orjson import dumps``, which runs importlib's Python fromlist handling every call).

    ``client_context`` (Lambda's ClientContext, a JSON text) is added only when given."""
    import orjson

    dumps = orjson.dumps
    end = b"}" if client_context is None else b',"client_context":%s}' % dumps(client_context)
    return b"".join(
        (
            _EXEC_PREFIX,
            dumps(frame_id),
            b',"request_id":',
            dumps(request_id),
            b',"deadline_ms":%d,"trace_parent":' % deadline_ms,
            dumps(trace_parent),
            b',"event":',
            event,
            end,
        )
    )


def decode_body(body: bytes) -> dict[str, Any]:
    try:
        message = json.loads(body)
    except ValueError as exc:
        raise ProtocolError(f"frame body is not JSON: {exc}") from exc
    if not isinstance(message, dict) or type(message.get("type")) is not int:  # bool is no type
        raise ProtocolError("frame body must be a JSON object with an integer 'type'")
    return message


def check_length(header: bytes, max_message_bytes: int) -> int:
    (length,) = HEADER.unpack(header)
    if length > max_message_bytes:
        raise MessageTooLarge(length, max_message_bytes)
    return int(length)


def read_frame(
    stream: Readable, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> bytes | None:
    """Blocking read of one frame body; ``None`` on a clean EOF between frames."""
    header = _read_exactly(stream, HEADER.size, allow_eof=True)
    if header is None:
        return None
    length = check_length(header, max_message_bytes)
    body = _read_exactly(stream, length, allow_eof=False)
    if body is None:  # cannot happen with allow_eof=False; keeps the type honest without assert
        raise ProtocolError("connection closed before the frame body")
    return body


def _read_exactly(stream: Readable, size: int, *, allow_eof: bool) -> bytes | None:
    chunks = []
    remaining = size
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            if allow_eof and remaining == size:
                return None
            raise ProtocolError(f"connection closed after {size - remaining} of {size} bytes")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
