"""Opaque keyset cursors and page-size checks shared by every store implementation.

A cursor is the URL-safe base64 of a JSON array ``[kind, *key]``. Clients must treat it as
opaque; the ``kind`` tag makes a cursor of one list fail loudly when passed to another instead of
silently skipping rows.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime

from nova.core.errors import RequestInvalid
from nova.store.ports import MAX_PAGE_LIMIT

FUNCTIONS = "f"
INVOCATIONS = "i"
VERSIONS = "v"
ALIASES = "a"
DEAD_LETTERS = "d"
SECRETS = "s"
TRIGGERS = "t"
SCHEDULES = "sc"
AUDIT = "u"
KEYS = "k"


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE_LIMIT:
        raise RequestInvalid(f"limit: {limit} is out of range; use 1 to {MAX_PAGE_LIMIT}")
    return limit


def encode(kind: str, *key: str) -> str:
    raw = json.dumps([kind, *key], separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode(cursor: str, kind: str, arity: int) -> tuple[str, ...]:
    """The key of ``cursor``; ``RequestInvalid`` if it is not a cursor of this ``kind``."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise _invalid(cursor) from exc
    if (
        not isinstance(value, list)
        or len(value) != arity + 1
        or value[0] != kind
        or not all(isinstance(part, str) for part in value)
    ):
        raise _invalid(cursor)
    return tuple(value[1:])


def encode_invocation(created_at: datetime, log_id: str) -> str:
    return encode(INVOCATIONS, created_at.isoformat(), log_id)


def decode_invocation(cursor: str) -> tuple[datetime, str]:
    """The (created_at, id) key of an invocation log cursor."""
    return decode_timed(cursor, INVOCATIONS)


def decode_timed(cursor: str, kind: str) -> tuple[datetime, str]:
    """The (time, id) key of a cursor of ``kind`` over a list ordered by time, then id."""
    created_at, log_id = decode(cursor, kind, 2)
    try:
        moment = datetime.fromisoformat(created_at)
    except ValueError as exc:
        raise _invalid(cursor) from exc
    if moment.utcoffset() is None:  # we only ever write aware times; this one was forged
        raise _invalid(cursor)
    return moment, log_id


def _invalid(cursor: str) -> RequestInvalid:
    shown = cursor if len(cursor) <= 40 else cursor[:40] + "…"
    return RequestInvalid(
        f"cursor: {shown!r} is not a cursor of this list; pass the `next` value of the previous "
        "page unchanged, or omit it to start from the first page"
    )
