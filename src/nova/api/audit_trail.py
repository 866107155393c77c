"""Recording requests in the audit log: a bare ASGI middleware behind the authentication gate.

Every request that changes something (POST, PUT, PATCH, DELETE; invocations are not changes)
is recorded after its answer went out, with the key that sent it, what it did
(:func:`describe`), its target, the outcome (``ok`` or the error code answered) and the client
address. It sits behind the invoke fast path (invocations are no changes); the gate reports refused
requests through :func:`refusal_recorder`. Entries name
things (functions, secrets, keys) and never hold a body: no secret value or key can reach them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nova.api.auth_gate import key_of
from nova.api.tenancy import environment
from nova.auth.audit import AuditLog
from nova.core.audit import AuditEntry
from nova.core.errors import NovaError
from nova.core.tenancy import DEFAULT_ENVIRONMENT, Environment

TARGET = "nova.audit_target"  # a route sets it when the target is in the body (a create)
_CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_NOT_CHANGES = re.compile(r"^/functions/[^/]+/invoke$|^/2015-03-31/functions/[^/]+/invocations$")

# (method, path pattern, action); the pattern's groups, joined with ":", are the target.
_ACTIONS: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (method, re.compile(f"^{path}$"), action)
    for method, path, action in (
        ("POST", "/functions", "function.create"),
        ("PATCH", "/functions/([^/]+)", "function.update"),
        ("DELETE", "/functions/([^/]+)", "function.delete"),
        ("PUT", "/functions/([^/]+)/code", "function.code"),
        ("DELETE", "/functions/([^/]+)/instances", "function.scale_to_zero"),
        ("POST", "/functions/([^/]+)/versions", "version.publish"),
        ("DELETE", "/functions/([^/]+)/versions/([^/]+)", "version.delete"),
        ("PUT", "/functions/([^/]+)/aliases/([^/]+)", "alias.set"),
        ("DELETE", "/functions/([^/]+)/aliases/([^/]+)", "alias.delete"),
        ("POST", "/functions/([^/]+)/aliases/([^/]+)/rollback", "alias.rollback"),
        ("POST", "/functions/([^/]+)/snapshot", "snapshot.create"),
        ("DELETE", "/snapshots/([^/]+)", "snapshot.delete"),
        ("PUT", "/secrets/([^/]+)", "secret.set"),
        ("DELETE", "/secrets/([^/]+)", "secret.delete"),
        ("POST", "/keys", "key.create"),
        ("DELETE", "/keys/([^/]+)", "key.delete"),
        ("POST", "/keys/([^/]+)/disable", "key.disable"),
        ("POST", "/keys/([^/]+)/enable", "key.enable"),
        ("POST", "/admin/master-key/rotate", "master_key.rotate"),
        ("POST", "/environments", "environment.create"),
        ("PATCH", "/environments/([^/]+/[^/]+/[^/]+)/quotas", "environment.quotas"),
        ("DELETE", "/environments/([^/]+/[^/]+/[^/]+)", "environment.delete"),
        ("POST", "/runtimes", "runtime.register"),
        ("POST", "/images/([^/]+)/build", "image.build"),
        ("POST", "/images/prune", "image.prune"),
        ("DELETE", "/vm-snapshots/([^/]+)", "vm_snapshot.evict"),
        ("POST", "/dead-letters/replay", "dead_letters.replay"),
        ("POST", "/dead-letters/purge", "dead_letters.purge"),
    )
)


def describe(method: str, path: str) -> tuple[str, str]:
    """(action, target) of a request; an unlisted change is ``request`` on its path."""
    for action_method, pattern, action in _ACTIONS:
        if method == action_method:
            match = pattern.match(path)
            if match is not None:
                # A path naming no target (a create): the route sets it once it read the body.
                return action, ":".join(match.groups()) or f"{method} {path}"
    return "request", f"{method} {path}"


def _entry(scope: Scope, action: str, target: str, outcome: str, status: int) -> AuditEntry:
    key = key_of(scope)
    client = scope.get("client")
    return AuditEntry(
        at=datetime.now(UTC),
        actor_id=key.id if key is not None else "",
        actor_name=key.name if key is not None else "anonymous",
        action=action,
        target=target,
        outcome=outcome,
        status=status,
        source_ip=client[0] if client else "",
        environment=_environment(scope).path,
    )


def _environment(scope: Scope) -> Environment:
    """Where the request acted; for one refused for naming an environment it may not use,
    its key's own (or the default)."""
    try:
        return environment(scope)
    except NovaError:
        key = key_of(scope)
        return key.environment if key is not None and key.environment else DEFAULT_ENVIRONMENT


def refusal_recorder(get_audit: Callable[[], AuditLog]) -> Callable[[Scope, NovaError], None]:
    """The authentication gate's hook: each refused request (of any method) as an entry."""

    def refused(scope: Scope, error: NovaError) -> None:
        action, target = describe(scope["method"], scope["path"])
        if action == "request":
            action, target = "auth.refused", f"{scope['method']} {scope['path']}"
        get_audit().add(_entry(scope, action, target, error.code, error.status))

    return refused


class AuditTrail:
    def __init__(self, app: ASGIApp, get_audit: Callable[[], AuditLog]) -> None:
        """``get_audit`` is called at the first request (the lifespan builds the log)."""
        self._app = app
        self._get_audit = get_audit
        self._log: AuditLog | None = None

    @property
    def _audit(self) -> AuditLog:
        if self._log is None:
            self._log = self._get_audit()
        return self._log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("method") not in _CHANGES or _NOT_CHANGES.match(scope["path"]):
            await self._app(scope, receive, send)
            return
        answer: dict[str, object] = {"status": 500, "outcome": "Nova.InternalError"}
        recorded = False

        async def record() -> None:
            nonlocal recorded
            recorded = True
            action, target = describe(scope["method"], scope["path"])
            target = scope.get(TARGET) or target
            status = answer["status"]
            await self._audit.record(
                _entry(scope, action, target, str(answer["outcome"]), int(str(status)))
            )

        async def watching(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
                answer["outcome"] = "ok" if message["status"] < 400 else ""
            elif message["type"] == "http.response.body":
                if answer["outcome"] == "":
                    answer["outcome"] = _error_code(message.get("body", b""), answer["status"])
                if not message.get("more_body", False):
                    # Written before the caller has the answer: a change it saw is audited,
                    # and its next request's entry comes after this one.
                    await record()
            await send(message)

        try:
            await self._app(scope, receive, watching)
        finally:
            if not recorded:  # no complete answer was sent (an error, a disconnect)
                await record()


def _error_code(body: bytes, status: object) -> str:
    try:
        error = orjson.loads(body).get("error", {})
        return str(error.get("code") or f"Http.{status}")
    except (orjson.JSONDecodeError, AttributeError):
        return f"Http.{status}"
