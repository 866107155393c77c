"""The permission table: which role may do what, and which permission each endpoint needs.

Roles (README, "Authentication"):

=========  =================================================================================
admin      everything
developer  functions (read, write, invoke), secrets (read names, write), audit
invoker    invoke functions, nothing else
viewer     read functions, logs, metrics and secret names
=========  =================================================================================

Endpoints are matched by method and path, first rule first. A path no rule names needs
``admin``: a route added without a rule is closed, not open. Public paths (``auth.public_paths``,
``/health`` by default) need no key at all; :meth:`PublicPaths.is_public` alone decides it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from nova.core.auth import Permission, Role

P = Permission
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.DEVELOPER: frozenset(
        {P.INVOKE, P.READ, P.WRITE, P.SECRETS_READ, P.SECRETS_WRITE, P.AUDIT}
    ),
    Role.INVOKER: frozenset({P.INVOKE}),
    Role.VIEWER: frozenset({P.READ, P.SECRETS_READ}),
}


@dataclass(frozen=True, slots=True)
class Rule:
    """``pattern``'s group ``fn``, when it has one, is the function the request is about; a
    key scoped to some functions sees only those. ``lists_functions``: the route itself
    filters what a scoped key sees; every other rule without ``fn`` needs an unscoped key."""

    methods: frozenset[str]
    pattern: re.Pattern[str]
    permission: Permission
    lists_functions: bool = False


def _rule(methods: str, path: str, permission: Permission, *, lists: bool = False) -> Rule:
    return Rule(frozenset(methods.split()), re.compile(f"^{path}$"), permission, lists)


_FN = r"(?P<fn>[^/]+)"
_ANY = "GET HEAD POST PUT PATCH DELETE"
READ = "GET HEAD"
CHANGE = "POST PUT PATCH DELETE"

RULES: tuple[Rule, ...] = (
    # The invoke fast path first: it is the one matched on every invocation.
    _rule("POST", f"/functions/{_FN}/invoke", P.INVOKE),
    _rule("POST", f"/2015-03-31/functions/{_FN}/invocations", P.INVOKE),
    _rule(READ, "/2015-03-31/functions/?", P.READ, lists=True),
    _rule(READ, f"/2015-03-31/functions/{_FN}", P.READ),
    _rule(READ, "/functions", P.READ, lists=True),
    _rule("POST", "/functions", P.WRITE, lists=True),  # the route checks the new name's scope
    _rule(READ, f"/functions/{_FN}(/.*)?", P.READ),
    _rule(CHANGE, f"/functions/{_FN}(/.*)?", P.WRITE),
    _rule(READ, "/secrets", P.SECRETS_READ),
    _rule("PUT DELETE", "/secrets/[^/]+", P.SECRETS_WRITE),
    _rule(_ANY, "/keys(/.*)?", P.KEYS),
    _rule(READ, "/audit", P.AUDIT),
    _rule(READ, "/environments(/.*)?", P.READ),  # changes: admin (the fallback)
    _rule(READ, "/invocations(/.*)?", P.READ),
    _rule(READ, "/dead-letters", P.READ),
    _rule("POST", "/dead-letters/(replay|purge)", P.WRITE),
    _rule(READ, "/(stats|slo|runtimes|images(/[^/]+)?|snapshots|vm-snapshots)", P.READ),
    _rule(READ, "/metrics(/[a-z]+)?", P.READ),
    _rule("DELETE", "/snapshots/[^/]+", P.WRITE),
    # Event sources: routes, schedules and queue triggers each name a function in their body,
    # so they need an unscoped key.
    _rule(READ, "/(routes|schedules|triggers)(/[^/]+)?", P.READ),
    _rule(CHANGE, "/(routes|schedules|triggers)(/.*)?", P.WRITE),
    _rule(READ, "/(docs(/.*)?|redoc|openapi.json)", P.READ),
)
_INVOKE = RULES[0]
FALLBACK = Rule(frozenset(), re.compile(""), P.ADMIN)


def rule_for(method: str, path: str) -> tuple[Rule, str | None]:
    """The rule of a request and the function it names (None when it names none)."""
    if method == "POST" and path.endswith("/invoke"):  # the hot path: one match, no loop
        match = _INVOKE.pattern.match(path)
        if match is not None:
            return _INVOKE, _bare_name(match.group("fn"))
    for rule in RULES:
        if method in rule.methods:
            match = rule.pattern.match(path)
            if match is not None:
                name = match.groupdict().get("fn")
                return rule, None if name is None else _bare_name(name)
    return FALLBACK, None


# Views of the whole daemon that name every environment's functions: a key bound to one
# environment gets 404 there, as a scoped key does on endpoints about no single function.
_DAEMON_WIDE = re.compile(r"^/(stats|metrics(/(json|prometheus))?|snapshots|dead-letters(/.*)?)$")


def daemon_wide(path: str) -> bool:
    """Whether ``path`` shows the whole daemon rather than one environment."""
    return _DAEMON_WIDE.match(path) is not None


def _bare_name(raw: str) -> str:
    """``name``, ``name:qualifier`` or a Lambda ARN -> the function's name."""
    if raw.startswith("arn:"):
        at = raw.find(":function:")
        raw = raw[at + len(":function:") :] if at >= 0 else raw
    return raw.partition(":")[0].partition("%3A")[0]


def allowed(role: Role, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS[role]


class PublicPaths:
    """Paths served without a key: each entry covers itself and every path below it
    (``/health`` covers ``/health/live`` and the other probes)."""

    def __init__(self, paths: Iterable[str]) -> None:
        cleaned = [path.rstrip("/") or "/" for path in paths]
        self._exact = frozenset(cleaned)
        self._prefixes = tuple(path.rstrip("/") + "/" for path in cleaned)

    def is_public(self, path: str) -> bool:
        """The one decision whether ``path`` needs a key (trigger routes hook in here)."""
        return path in self._exact or path.startswith(self._prefixes)
