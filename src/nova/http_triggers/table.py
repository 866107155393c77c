"""Which custom route a request takes: the longest matching path prefix, then its method.

A prefix matches a path equal to it or below it at a segment boundary (``/hooks/gh`` matches
``/hooks/gh`` and ``/hooks/gh/push``, not ``/hooks/ghost``). A route for the request's
method beats an ``ANY`` route on the same prefix. Built once per change, read per request:
a lookup is one dict probe per segment of the path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from nova.core.errors import RequestInvalid
from nova.core.triggers import ANY_METHOD, Route

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", ANY_METHOD)
MAX_PREFIX = 512
_SEGMENT = re.compile(r"^[A-Za-z0-9._~!$&'()*+,;=:@%-]+$")


@dataclass(frozen=True, slots=True)
class Match:
    route: Route | None  # None: a prefix matched, but no route for this method (405)


class RouteTable:
    def __init__(self, routes: Iterable[Route] = ()) -> None:
        self._by_prefix: dict[str, dict[str, Route]] = {}
        for route in routes:
            self._by_prefix.setdefault(route.path_prefix, {})[route.method] = route

    def __bool__(self) -> bool:
        return bool(self._by_prefix)

    def match(self, method: str, path: str) -> Match | None:
        """The route for ``method`` and ``path``; ``None`` when no prefix matches at all."""
        prefix_matched = False
        end = len(path)
        while end > 0:
            methods = self._by_prefix.get(path[:end])
            if methods is not None:
                route = methods.get(method) or methods.get(ANY_METHOD)
                if route is not None:
                    return Match(route)
                prefix_matched = True
            end = path.rfind("/", 0, end)
        return Match(None) if prefix_matched else None


def validate_method(method: str) -> str:
    upper = method.upper()
    if upper not in METHODS:
        raise RequestInvalid(f"method: {method[:20]!r} is not one of {', '.join(METHODS)}")
    return upper


def validate_prefix(prefix: str, reserved: Iterable[str]) -> str:
    """A path prefix like ``/hooks/github``: absolute, no trailing slash, no empty, ``.`` or
    ``..`` segments; its first segment must not be one of Nova's own API paths."""
    problem = None
    segments = prefix.split("/")[1:]
    if not prefix.startswith("/") or len(prefix) > MAX_PREFIX or prefix == "/":
        problem = f"must start with '/', name at least one segment and be at most {MAX_PREFIX}"
    elif any(s in ("", ".", "..") or not _SEGMENT.match(s) for s in segments):
        problem = "segments must be non-empty URL path text (no '//', '.', '..' or spaces)"
    elif segments[0] in set(reserved):
        problem = f"/{segments[0]} is one of Nova's own paths; use another, e.g. /hooks/..."
    if problem is not None:
        raise RequestInvalid(f"path_prefix: {prefix[:80]!r}: {problem}")
    return prefix
