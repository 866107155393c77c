"""The invocation a log line belongs to, carried in a context variable.

The executor sets it for the length of an invocation; every log line written meanwhile - in the
invoke path or a task started from it, such as the cold start it waits for - carries the
request id, function, version and trace id in JSON logs. One variable holding a tuple, so an
invocation costs one ``set`` and one ``reset``.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import NamedTuple


class InvocationContext(NamedTuple):  # a tuple: made per invocation, cheaper than a dataclass
    request_id: str
    function: str
    version: str | None = None  # None until the version is resolved
    trace_id: str | None = None  # the W3C trace id (32 hex digits) when the call has one


CURRENT: ContextVar[InvocationContext | None] = ContextVar("nova_invocation", default=None)


def trace_id_of(trace_parent: str | None) -> str | None:
    """The trace id of a well-formed W3C traceparent (``00-<32 hex>-<16 hex>-<2 hex>``)."""
    if trace_parent is None or len(trace_parent) != 55 or trace_parent[2] != "-":
        return None
    return trace_parent[3:35]
